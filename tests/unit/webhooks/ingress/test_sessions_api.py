"""The ingress's async API calls against a small HTTP server that answers as the API server
does (the real API server: tests/integration/test_ingress_sessions.py)."""

from __future__ import annotations

import asyncio
import base64
import json
import socket
import threading
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web

from ambient.common.kube.config import Configuration
from ambient.crds.naming import InvalidNameError
from ambient.webhooks.ingress.errors import KubeRefusedError, KubeUnavailableError
from ambient.webhooks.ingress.sessions_api import AsyncSessionsApi, SessionsApi

SESSIONS = "/apis/ambient.ai/v1alpha1/namespaces/{ns}/sessions"


def _manifest(ns: str, name: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": ns}, "spec": {"n": 2**70}}


class FakeApiServer:
    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], dict[str, Any]] = {}
        self.secret_reads = 0
        self.auth: set[str] = set()

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post(SESSIONS, self.create)
        app.router.add_get(SESSIONS + "/{name}", self.get)
        app.router.add_get("/api/v1/namespaces/{ns}/secrets/{name}", self.secret)
        return app

    async def create(self, request: web.Request) -> web.Response:
        self.auth.add(request.headers.get("Authorization", ""))
        ns = request.match_info["ns"]
        if ns == "broken":
            return web.json_response({"message": "etcd"}, status=500)
        if ns == "denied":
            return web.json_response({"message": "admission webhook said no"}, status=403)
        body = json.loads(await request.read())
        key = (ns, body["metadata"]["name"])
        if key in self.objects:
            return web.json_response({"reason": "AlreadyExists"}, status=409)
        self.objects[key] = body
        return web.json_response(body, status=201)

    async def get(self, request: web.Request) -> web.Response:
        obj = self.objects.get((request.match_info["ns"], request.match_info["name"]))
        return web.json_response(obj) if obj else web.json_response({}, status=404)

    async def secret(self, request: web.Request) -> web.Response:
        self.secret_reads += 1
        await asyncio.sleep(0.05)  # long enough for every caller to be waiting on it
        if request.match_info["name"] == "missing":
            return web.json_response({}, status=404)
        data = {"github": base64.b64encode(b"s3cret\n").decode()}
        return web.json_response({"data": data})


def _serve(test: Callable[[AsyncSessionsApi, FakeApiServer], Awaitable[None]]) -> None:
    async def main() -> None:
        fake = FakeApiServer()
        runner = web.AppRunner(fake.app())
        await runner.setup()
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        await web.TCPSite(runner, "127.0.0.1", port).start()
        cfg = Configuration(host=f"http://127.0.0.1:{port}", token="token")
        kube = AsyncSessionsApi(cfg, connections=4)
        try:
            await test(kube, fake)
        finally:
            await kube.aclose()
            await runner.cleanup()

    asyncio.run(main())


def test_create_then_the_same_name_reads_back_the_existing_session() -> None:
    async def test(kube: AsyncSessionsApi, fake: FakeApiServer) -> None:
        assert await kube.create_session(_manifest("team-a", "s1")) is None
        # integers beyond 64 bits survive serialisation
        assert fake.objects[("team-a", "s1")]["spec"]["n"] == 2**70
        existing = await kube.create_session(_manifest("team-a", "s1"))
        assert existing is not None and existing["metadata"]["name"] == "s1"
        assert fake.auth == {"Bearer token"}

    _serve(test)


def test_api_errors_map_to_refused_or_unavailable() -> None:
    async def test(kube: AsyncSessionsApi, fake: FakeApiServer) -> None:
        with pytest.raises(KubeRefusedError) as refused:
            await kube.create_session(_manifest("denied", "s1"))
        assert (refused.value.status, refused.value.message) == (403, "admission webhook said no")
        with pytest.raises(KubeUnavailableError):
            await kube.create_session(_manifest("broken", "s1"))
        assert fake.objects == {}

    _serve(test)


def test_an_unreachable_api_server_is_unavailable() -> None:
    async def main() -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]  # nothing listens here once closed
        cfg = Configuration(host=f"http://127.0.0.1:{port}")
        kube = AsyncSessionsApi(cfg)
        try:
            with pytest.raises(KubeUnavailableError):
                await kube.create_session(_manifest("team-a", "s1"))
        finally:
            await kube.aclose()

    asyncio.run(main())


def test_concurrent_secret_lookups_make_one_read_and_are_cached() -> None:
    async def test(kube: AsyncSessionsApi, fake: FakeApiServer) -> None:
        found = await asyncio.gather(
            *(kube.signing_secret("team-a", "signing", "github") for _ in range(50))
        )
        assert set(found) == {"s3cret"}
        assert await kube.signing_secret("team-a", "signing", "slack") is None
        assert fake.secret_reads == 1
        assert await kube.signing_secret("team-a", "missing", "github") is None
        assert fake.secret_reads == 2

    _serve(test)


@pytest.mark.parametrize("name", ["../../team-alpha/secrets/x", "..", "x/y", "Signing"])
def test_a_secret_name_no_secret_can_have_is_never_requested(name: str) -> None:
    async def test(kube: AsyncSessionsApi, fake: FakeApiServer) -> None:
        with pytest.raises(InvalidNameError, match="Secret name"):
            await kube.signing_secret("team-b", name, "github")
        assert fake.secret_reads == 0
        with pytest.raises(InvalidNameError, match="namespace"):
            await kube.signing_secret("../team-a", "signing", "github")
        assert fake.secret_reads == 0

    _serve(test)


def test_the_sync_client_refuses_the_name_before_any_request() -> None:
    class NoRequests:
        def call(self, *args: object) -> None:
            raise AssertionError("a request was made")

    kube = SessionsApi.__new__(SessionsApi)  # no kubeconfig needed: no request is made
    kube._lock = threading.Lock()
    kube._secrets = {}
    kube._secret_ttl = 10.0
    kube.kube = NoRequests()  # type: ignore[assignment]
    with pytest.raises(InvalidNameError):
        kube.signing_secret("team-b", "../../team-alpha/secrets/x", "github")
