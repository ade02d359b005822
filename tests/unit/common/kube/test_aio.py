"""The asynchronous client against a small aiohttp server answering as the API server
does: the same taxonomy as the synchronous one, one retry of a dropped connection."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable

import pytest
from aiohttp import web

from ambient.common.kube import errors
from ambient.common.kube.aio import AsyncKube, dumps
from ambient.common.kube.config import Configuration


def _serve(test: Callable[[AsyncKube, list[str]], Awaitable[None]]) -> None:
    calls: list[str] = []

    async def answer(request: web.Request) -> web.StreamResponse:
        calls.append(request.path)
        name = request.match_info["name"]
        if name == "drop-once" and calls.count(request.path) == 1:
            assert request.transport is not None
            request.transport.close()  # the connection dropped before an answer
            return web.Response()
        statuses = {"missing": 404, "taken": 409, "bad": 422, "no": 403, "busy": 429}
        if name in statuses:
            return web.json_response({"reason": "R", "message": name}, status=statuses[name])
        return web.json_response({"name": name, "big": 2**70})

    async def main() -> None:
        app = web.Application()
        app.router.add_route("*", "/x/{name}", answer)
        runner = web.AppRunner(app)
        await runner.setup()
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        await web.TCPSite(runner, "127.0.0.1", port).start()
        cfg = Configuration(host=f"http://127.0.0.1:{port}")
        kube = AsyncKube(cfg, connections=2)
        try:
            await test(kube, calls)
        finally:
            await kube.aclose()
            await runner.cleanup()

    asyncio.run(main())


def test_answers_decode_and_statuses_map_to_the_taxonomy() -> None:
    async def test(kube: AsyncKube, calls: list[str]) -> None:
        assert (await kube.call("GET", "/x/ok"))["big"] == 2**70
        expected = {
            "missing": errors.NotFoundError,
            "taken": errors.ConflictError,
            "bad": errors.InvalidError,
            "no": errors.RefusedError,
            "busy": errors.UnavailableError,
        }
        for name, cls in expected.items():
            with pytest.raises(cls) as raised:
                await kube.send("POST", f"/x/{name}", {"a": 1})
            assert type(raised.value) is cls
        assert raised.value.message == "the API server answered 429"

    _serve(test)


def test_a_dropped_connection_is_tried_once_more() -> None:
    async def test(kube: AsyncKube, calls: list[str]) -> None:
        assert (await kube.call("GET", "/x/drop-once"))["name"] == "drop-once"
        assert calls == ["/x/drop-once", "/x/drop-once"]

    _serve(test)


def test_no_answer_is_unavailable() -> None:
    async def main() -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        cfg = Configuration(host=f"http://127.0.0.1:{port}")
        kube = AsyncKube(cfg)
        try:
            with pytest.raises(errors.UnavailableError) as raised:
                await kube.call("GET", "/x/ok")
            assert raised.value.status == 0
        finally:
            await kube.aclose()

    asyncio.run(main())


def test_integers_beyond_64_bits_are_written() -> None:
    assert dumps({"n": 2**70}) == b'{"n": 1180591620717411303424}'
    assert dumps({"n": 1}) == b'{"n":1}'
