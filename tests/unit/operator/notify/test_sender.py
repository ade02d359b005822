"""The background notifier against a real local HTTP receiver (aiohttp's server)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from ambient.operator.notify import rules as n
from ambient.operator.notify.sender import Job, Notifier, Outcome

SECRET = b"notify-secret"


class Receiver:
    """Answers ``fail_first`` requests with 503, then 200; keeps what it received."""

    def __init__(self, fail_first: int = 0, status: int = 503) -> None:
        self.fail_first = fail_first
        self.status = status
        self.requests: list[tuple[dict[str, str], bytes]] = []

    async def handle(self, request: web.Request) -> web.Response:
        self.requests.append((dict(request.headers), await request.read()))
        if len(self.requests) <= self.fail_first:
            return web.Response(status=self.status)
        return web.Response(status=200)


async def _serve(receiver: Receiver) -> tuple[web.AppRunner, str]:
    app = web.Application()
    app.router.add_post("/hook", receiver.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"http://127.0.0.1:{port}/hook"


def _job(url: str, delivery_id: str = "uid-1/session.completed/abc") -> Job:
    delivery = n.Delivery(n.NotificationEvent.COMPLETED, url, delivery_id, "notify/x")
    return Job("team-alpha", "s1", delivery, n.encode({"event": "session.completed"}), SECRET)


def _run(
    receiver: Receiver,
    body: Callable[[Notifier, str, list[tuple[Job, Outcome]]], Awaitable[Any]],
    **kwargs: Any,
) -> tuple[list[tuple[Job, Outcome]], Any]:
    done: list[tuple[Job, Outcome]] = []

    async def record(job: Job, outcome: Outcome) -> None:
        done.append((job, outcome))

    async def main() -> Any:
        runner, url = await _serve(receiver)
        notifier = Notifier(record, **{"base_backoff": 0.01, **kwargs})
        await notifier.start()
        try:
            return await body(notifier, url, done)
        finally:
            await notifier.stop()
            await runner.cleanup()

    result = asyncio.run(main())
    return done, result


def test_retries_until_delivered_and_signs_every_attempt() -> None:
    receiver = Receiver(fail_first=2)

    async def body(notifier: Notifier, url: str, done: list[tuple[Job, Outcome]]) -> None:
        assert notifier.submit(_job(url))
        await notifier.drain()

    done, _ = _run(receiver, body)
    assert len(receiver.requests) == 3
    ((_, outcome),) = done
    assert outcome == Outcome(delivered=True, attempts=3, status=200)
    for headers, raw in receiver.requests:
        assert json.loads(raw) == {"event": "session.completed"}
        stamp = int(headers[n.TIMESTAMP_HEADER])
        assert n.verify(SECRET, stamp, raw, headers[n.SIGNATURE_HEADER])
        assert headers[n.DELIVERY_HEADER] == "uid-1/session.completed/abc"


def test_gives_up_after_max_attempts() -> None:
    receiver = Receiver(fail_first=99)

    async def body(notifier: Notifier, url: str, done: list[tuple[Job, Outcome]]) -> None:
        notifier.submit(_job(url))
        await notifier.drain()

    done, _ = _run(receiver, body, max_attempts=3)
    ((_, outcome),) = done
    assert (outcome.delivered, outcome.attempts, outcome.status) == (False, 3, 503)
    assert len(receiver.requests) == 3


def test_a_client_error_is_not_retried() -> None:
    receiver = Receiver(fail_first=99, status=404)

    async def body(notifier: Notifier, url: str, done: list[tuple[Job, Outcome]]) -> None:
        notifier.submit(_job(url))
        await notifier.drain()

    done, _ = _run(receiver, body)
    assert [o.attempts for _, o in done] == [1]
    assert len(receiver.requests) == 1


def test_an_unreachable_endpoint_is_reported_not_raised() -> None:
    async def body(notifier: Notifier, _url: str, done: list[tuple[Job, Outcome]]) -> None:
        notifier.submit(_job("http://127.0.0.1:9/hook"))
        await notifier.drain()

    done, _ = _run(Receiver(), body, max_attempts=2)
    ((_, outcome),) = done
    assert not outcome.delivered and outcome.status is None and outcome.error


def test_submit_never_waits_and_refuses_duplicates_in_flight() -> None:
    receiver = Receiver(fail_first=99)

    async def body(
        notifier: Notifier, url: str, done: list[tuple[Job, Outcome]]
    ) -> tuple[bool, bool, int]:
        first = notifier.submit(_job(url))
        second = notifier.submit(_job(url))
        outcomes_when_submit_returned = len(done)
        await notifier.drain()
        return first, second, outcomes_when_submit_returned

    done, (first, second, early) = _run(receiver, body, max_attempts=3)
    assert (first, second) == (True, False)
    assert early == 0  # submit returned before any attempt finished
    assert len(done) == 1 and len(receiver.requests) == 3


def test_a_full_queue_refuses_instead_of_growing() -> None:
    async def body(notifier: Notifier, url: str, done: list[tuple[Job, Outcome]]) -> list[bool]:
        return [notifier.submit(_job(url, f"id-{i}")) for i in range(3)]

    _, accepted = _run(Receiver(), body, workers=1, queue_size=1)
    assert accepted.count(True) <= 2 and accepted[-1] is False
