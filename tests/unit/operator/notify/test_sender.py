"""The background notifier against a real local HTTP receiver (aiohttp's server)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from ambient.operator.notify import egress
from ambient.operator.notify import rules as n
from ambient.operator.notify.sender import Job, Notifier, Outcome

SECRET = b"notify-secret"
# The receiver listens on loopback, which the egress rule refuses unless allow-listed.
LOOPBACK_ALLOWED = egress.parse_rule(allow="127.0.0.1/32")


class Receiver:
    """Answers ``fail_first`` requests with 503, then 200; keeps what it received."""

    def __init__(
        self, fail_first: int = 0, status: int = 503, headers: dict[str, str] | None = None
    ) -> None:
        self.fail_first = fail_first
        self.status = status
        self.headers = headers or {}
        self.requests: list[tuple[dict[str, str], bytes]] = []

    async def handle(self, request: web.Request) -> web.Response:
        self.requests.append((dict(request.headers), await request.read()))
        if len(self.requests) <= self.fail_first:
            return web.Response(status=self.status, headers=self.headers)
        return web.Response(status=200)


async def _serve(receiver: Receiver) -> tuple[web.AppRunner, str]:
    app = web.Application()
    app.router.add_post("/hook", receiver.handle)
    app.router.add_route("*", "/elsewhere", receiver.handle)
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
        notifier = Notifier(
            record, **{"base_backoff": 0.01, "egress_rule": LOOPBACK_ALLOWED, **kwargs}
        )
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


# The egress rule, enforced by the sender: one lookup per request, every address checked,
# the connection made to the checked address, no redirect followed.


class FakeDNS:
    """Answers each lookup with the next answer in line (the last one repeats)."""

    def __init__(self, *answers: list[str]) -> None:
        self.answers = list(answers)
        self.lookups: list[str] = []

    async def resolve(self, host: str, _port: int) -> list[str]:
        self.lookups.append(host)
        return self.answers[min(len(self.lookups), len(self.answers)) - 1]


def _send_once(
    receiver: Receiver, make_url: Callable[[str], str], **kwargs: Any
) -> tuple[Outcome, int]:
    async def body(notifier: Notifier, url: str, done: list[tuple[Job, Outcome]]) -> None:
        notifier.submit(_job(make_url(url)))
        await notifier.drain()

    done, _ = _run(receiver, body, **kwargs)
    ((_, outcome),) = done
    return outcome, len(receiver.requests)


def _named(host: str) -> Callable[[str], str]:
    """The receiver's URL with its address replaced by a host name."""
    return lambda url: url.replace("127.0.0.1", host)


def test_a_loopback_literal_is_refused_without_a_request() -> None:
    outcome, received = _send_once(Receiver(), lambda url: url, egress_rule=egress.EgressRule())
    assert outcome == Outcome(False, 1, None, "egress refused: loopback address")
    assert received == 0


def test_a_name_resolving_to_an_internal_address_is_refused_and_not_retried() -> None:
    dns = FakeDNS(["169.254.169.254"])
    outcome, received = _send_once(Receiver(), _named("hooks.example"), resolve=dns.resolve)
    assert (outcome.delivered, outcome.attempts, outcome.status) == (False, 1, None)
    assert outcome.error == "egress refused: link-local address"
    assert "169.254" not in outcome.error  # the tenant learns the class, not the address
    assert received == 0 and dns.lookups == ["hooks.example"]


def test_every_resolved_address_is_checked() -> None:
    dns = FakeDNS(["127.0.0.1", "10.0.0.7"])  # the first allowed, the second private
    outcome, received = _send_once(Receiver(), _named("hooks.example"), resolve=dns.resolve)
    assert outcome.error == "egress refused: private address" and received == 0


def test_the_connection_goes_to_the_checked_address_without_a_second_lookup() -> None:
    # A name the system cannot resolve reaches the receiver: the connection used the
    # address the fake lookup answered and the rule checked, and nothing looked it up again.
    dns = FakeDNS(["127.0.0.1"], ["10.0.0.7"])
    outcome, received = _send_once(
        Receiver(), _named("hooks.invalid"), resolve=dns.resolve, max_attempts=1
    )
    assert outcome == Outcome(True, 1, 200)
    assert received == 1 and dns.lookups == ["hooks.invalid"]


def test_a_name_rebound_to_an_internal_address_between_attempts_is_refused() -> None:
    # First lookup: an allowed address (the receiver answers 503); the retry's lookup: the
    # metadata service. The retry is refused before any connection.
    dns = FakeDNS(["127.0.0.1"], ["169.254.169.254"])
    outcome, received = _send_once(
        Receiver(fail_first=99), _named("hooks.example"), resolve=dns.resolve
    )
    assert (outcome.delivered, outcome.attempts, outcome.error) == (
        False,
        2,
        "egress refused: link-local address",
    )
    assert received == 1 and len(dns.lookups) == 2


def test_an_allow_listed_host_may_resolve_to_an_internal_address() -> None:
    dns = FakeDNS(["127.0.0.1"])
    rule = egress.parse_rule(allow="receiver.ambient-system.svc")
    outcome, received = _send_once(
        Receiver(), _named("receiver.ambient-system.svc"), resolve=dns.resolve, egress_rule=rule
    )
    assert outcome.delivered and received == 1


def test_a_redirect_is_not_followed() -> None:
    for status in (301, 302, 307, 308):
        receiver = Receiver(fail_first=99, status=status, headers={"Location": "/elsewhere"})
        outcome, received = _send_once(receiver, lambda url: url)
        assert (outcome.delivered, outcome.attempts, outcome.status) == (False, 1, status)
        assert outcome.error == f"redirect not followed (HTTP {status})"
        assert received == 1  # /elsewhere was never asked
