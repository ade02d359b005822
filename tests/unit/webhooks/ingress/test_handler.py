"""One delivery through IngressHandler, without HTTP: fakes for the creator, the store and
the clock (over HTTP: test_app.py; on the real control plane: tests/integration)."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from ambient.webhooks.ingress import events, pipeline
from ambient.webhooks.ingress.handler import IngressHandler, Reply
from ambient.webhooks.ingress.keyindex import KeyIndex, key_hash
from ambient.webhooks.ingress.settings import IngressSettings

KEY = "k-github-team-a"
GUID = "72d3162e-cc78-11e3-81ab-4c9367dc0958"
SPEC: dict[str, Any] = {
    "webhookAuth": {"apiKeys": {"github": key_hash(KEY)}, "signingSecretRef": {"name": "s"}},
    "defaults": {"framework": {"type": "script"}},
}


class Clock:
    """Monotonic seconds that move only when told."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _handler(creator, *, store=None, **settings: Any) -> IngressHandler:
    index = KeyIndex()
    index.replace_all([("team-a", SPEC)])
    return IngressHandler(
        index,
        creator,
        settings=IngressSettings(**settings),
        clock=Clock(),
        store=store,
        store_prefix="pfx",
        executor=ThreadPoolExecutor(2),
    )


async def _chunks(body: bytes, size: int = 64 * 1024) -> AsyncIterator[bytes]:
    for i in range(0, len(body), size):
        yield body[i : i + size]


def _deliver(
    handler: IngressHandler,
    signer,
    payload: Any,
    *,
    delivery: str = GUID,
    key: str = KEY,
    signature: str | None = None,
) -> Reply:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    headers = {
        "content-type": "application/json",
        "content-length": str(len(body)),
        "x-github-event": "pull_request",
        "x-github-delivery": delivery,
        "x-hub-signature-256": signature or signer.github(body),
    }
    return asyncio.run(handler.handle("github", key, headers, _chunks(body)))


def _name(payload: Any) -> str:
    """The Session a GitHub body maps to (by its digest, finding 5 of issue 17)."""
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return events.body_session_name("github", hashlib.sha256(body).hexdigest())


def test_a_signed_github_delivery_creates_one_session(signer, github_example, creator) -> None:
    handler = _handler(creator)
    payload = github_example("pull_request.opened")
    reply = _deliver(handler, signer, payload)
    assert reply.status == 202
    assert reply.body == {"namespace": "team-a", "session": _name(payload)}
    assert reply.headers["X-Trace-Id"]
    assert list(creator.sessions) == [("team-a", _name(payload))]
    assert creator.creates == 1


def test_a_bad_signature_is_refused_and_creates_nothing(signer, github_example, creator) -> None:
    handler = _handler(creator)
    reply = _deliver(
        handler, signer, github_example("pull_request.opened"), signature="sha256=" + "0" * 64
    )
    assert (reply.status, reply.body["error_code"]) == (401, "InvalidSignature")
    assert reply.body["trace_id"] == reply.headers["X-Trace-Id"]
    assert creator.creates == 0 and creator.sessions == {}


def test_the_same_delivery_id_again_creates_nothing(signer, github_example, creator) -> None:
    handler = _handler(creator)
    payload = github_example("pull_request.opened")
    first = _deliver(handler, signer, payload)
    again = _deliver(handler, signer, payload)
    assert (first.status, again.status) == (202, 200)
    assert again.body == first.body
    assert len(creator.sessions) == 1


def test_an_unknown_key_is_refused_before_the_body_is_read(signer, creator) -> None:
    handler = _handler(creator)
    read = []

    async def body() -> AsyncIterator[bytes]:
        read.append(True)
        yield b"{}"

    reply = asyncio.run(
        handler.handle("github", "not-a-key", {"content-type": "application/json"}, body())
    )
    assert (reply.status, reply.body["error_code"]) == (401, "UnknownKey")
    assert read == [] and creator.secret_reads == 0


def test_a_ping_answers_pong_and_creates_nothing(signer, creator) -> None:
    handler = _handler(creator)
    body = json.dumps({"zen": "Keep it logically awesome.", "hook_id": 1}).encode()
    headers = {
        "content-type": "application/json",
        "x-github-event": "ping",
        "x-github-delivery": GUID,
        "x-hub-signature-256": signer.github(body),
    }
    reply = asyncio.run(handler.handle("github", KEY, headers, _chunks(body)))
    assert (reply.status, reply.body) == (200, {"status": "pong"})
    assert creator.creates == 0


def test_a_large_payload_goes_through_the_one_offload_function(
    signer, github_example, creator, store, monkeypatch: pytest.MonkeyPatch
) -> None:
    offloads: list[str] = []
    original = pipeline.offload_payload

    def spy(*args: Any) -> None:
        offloads.append(args[-1].delivery_id)
        original(*args)

    monkeypatch.setattr(pipeline, "offload_payload", spy)
    handler = _handler(creator, store=store, max_body_bytes=10_000)
    payload = github_example("pull_request.opened")
    payload["pull_request"]["body"] = "x" * 50_000
    body = json.dumps(payload).encode()
    reply = _deliver(handler, signer, body)
    assert reply.status == 202, reply.body
    assert offloads == [GUID]
    # Stored by content: a replay under another delivery id finds the same object.
    key = f"pfx/team-a/payloads/github/{hashlib.sha256(body).hexdigest()}.json"
    assert store.objects == {key: body}
    trigger = creator.sessions[("team-a", _name(body))]["spec"]["trigger"]
    assert trigger["payload"] == {}
    assert trigger["payloadRef"] == {
        "location": f"s3://payloads/{key}",
        "size": len(body),
        "sha256": hashlib.sha256(body).hexdigest(),
    }


def test_a_large_payload_without_a_store_is_refused_unread(signer, github_example, creator) -> None:
    handler = _handler(creator, max_body_bytes=1_000)
    reply = _deliver(handler, signer, github_example("pull_request.opened"))
    assert (reply.status, reply.body["error_code"]) == (413, "PayloadTooLarge")
    assert creator.creates == 0


def test_a_key_over_its_rate_is_throttled(signer, github_example, creator) -> None:
    handler = _handler(creator, rate_per_second=1.0, rate_burst=1)
    payload = github_example("pull_request.opened")
    assert _deliver(handler, signer, payload).status == 202
    throttled = _deliver(handler, signer, payload, delivery="another")
    assert (throttled.status, throttled.body["error_code"]) == (429, "RateLimited")
    assert throttled.headers["Retry-After"]
    assert creator.creates == 1


def test_ready_follows_the_key_index(creator) -> None:
    handler = IngressHandler(KeyIndex(), creator, executor=ThreadPoolExecutor(1))
    assert not handler.ready
    handler.index.replace_all([])
    assert handler.ready


# --- the catch-all (issue 17, finding 13 and deliverable 3) -------------------------------


class RecordingLog:
    """The delivery log's one call the handler makes."""

    def __init__(self) -> None:
        self.records: list[pipeline.Audit] = []
        self.backlogged = False

    def register(self, registry: Any) -> None:
        pass

    async def record(self, audit: pipeline.Audit, executor: Any) -> None:
        self.records.append(audit)


class Broken:
    """A creator with a bug: the unexpected error the catch-all is for."""

    async def signing_secret(self, namespace: str, secret: str, source: str) -> str | None:
        raise RuntimeError("a bug, with a /var/secret/path in its message")

    async def create_session(self, manifest: dict[str, Any]) -> None:
        raise AssertionError("never reached")


def _sample(handler: IngressHandler, name: str, **labels: str) -> float:
    return handler.registry.get_sample_value(name, labels) or 0.0


def test_an_unexpected_error_is_a_500_in_the_error_shape_counted_logged_and_audited(
    signer, github_example, caplog
) -> None:
    handler = _handler(Broken())
    log = RecordingLog()
    handler.delivery_log = log  # type: ignore[assignment]
    with caplog.at_level("INFO"):
        reply = _deliver(handler, signer, github_example("pull_request.opened"))
    assert reply.status == 500
    assert set(reply.body) == {"error_code", "message", "details", "trace_id", "timestamp"}
    assert reply.body["error_code"] == "InternalError"
    trace = reply.body["trace_id"]
    assert reply.headers["X-Trace-Id"] == trace
    # no stack trace nor the exception's text in the answer
    assert "Traceback" not in json.dumps(reply.body) and "/var/secret" not in json.dumps(reply.body)
    # counted
    labels = {"source": "github", "outcome": "error"}
    assert _sample(handler, "ambient_ingress_deliveries_total", **labels) == 1
    assert _sample(handler, "ambient_ingress_unexpected_errors_total", where="delivery") == 1
    # kept in the delivery log (the request, for a replay once the bug is fixed)
    (record,) = log.records
    assert (record.outcome, record.reason, record.status) == ("error", "InternalError", 500)
    assert record.namespace == "team-a" and record.trace_id == trace
    # audited, and the stack trace is in the log under the trace id
    audits = [json.loads(r.getMessage()) for r in caplog.records if r.name.endswith(".audit")]
    assert [(a["outcome"], a["status"], a["trace_id"]) for a in audits] == [("error", 500, trace)]
    (logged,) = [r for r in caplog.records if r.name == "ambient.ingress" and r.exc_info]
    assert trace in logged.getMessage()


def test_a_non_ascii_signature_is_a_bad_signature(signer, github_example, creator) -> None:
    handler = _handler(creator)
    reply = _deliver(handler, signer, github_example("pull_request.opened"), signature="sha256=ü")
    assert (reply.status, reply.body["error_code"]) == (401, "InvalidSignature")
    assert _sample(handler, "ambient_ingress_unexpected_errors_total", where="delivery") == 0
    assert creator.creates == 0


# --- large bodies: fair, and held until the delivery log has them (issue 17, finding 10) --


KEY_B = "k-github-team-b"


class GatedCreator:
    """Holds every create until released, counting the deliveries in flight by namespace."""

    def __init__(self, secret: str) -> None:
        self.secret = secret
        self.active: dict[str, int] = {}
        self.most: dict[str, int] = {}
        self.gate = asyncio.Event()

    async def signing_secret(self, namespace: str, secret: str, source: str) -> str:
        return self.secret

    async def create_session(self, manifest: dict[str, Any]) -> None:
        ns = manifest["metadata"]["namespace"]
        self.active[ns] = self.active.get(ns, 0) + 1
        self.most[ns] = max(self.most.get(ns, 0), self.active[ns])
        await self.gate.wait()
        self.active[ns] -= 1


def test_one_namespace_cannot_hold_every_large_body_slot(signer, github_example, store) -> None:
    creator = GatedCreator(signer.secret)
    index = KeyIndex()
    spec_b = {
        **SPEC,
        "webhookAuth": {**SPEC["webhookAuth"], "apiKeys": {"github": key_hash(KEY_B)}},
    }
    index.replace_all([("team-a", SPEC), ("team-b", spec_b)])
    handler = IngressHandler(
        index,
        creator,
        settings=IngressSettings(max_body_bytes=1_000, max_large_deliveries=2),
        clock=Clock(),
        store=store,
        executor=ThreadPoolExecutor(2),
    )

    def request(key: str, n: int) -> Any:
        payload = github_example("pull_request.opened")
        payload["number"], payload["pad"] = n, "x" * 5_000
        body = json.dumps(payload).encode()
        headers = {
            "content-type": "application/json",
            "x-github-event": "pull_request",
            "x-github-delivery": f"d-{n}",
            "x-hub-signature-256": signer.github(body),
        }
        return handler.handle("github", key, headers, _chunks(body, 512))

    async def scenario() -> tuple[dict[str, int], list[int]]:
        # Team A sends three large bodies first; team B's one still gets a slot at once.
        tasks = [asyncio.create_task(request(KEY, n)) for n in range(3)]
        await asyncio.sleep(0.05)
        tasks.append(asyncio.create_task(request(KEY_B, 9)))
        for _ in range(100):
            await asyncio.sleep(0.01)
            if creator.active.get("team-b"):
                break
        in_flight = dict(creator.active)
        creator.gate.set()
        return in_flight, [(await t).status for t in tasks]

    in_flight, statuses = asyncio.run(scenario())
    assert in_flight == {"team-a": 1, "team-b": 1}
    assert statuses == [202, 202, 202, 202]
    assert creator.most == {"team-a": 1, "team-b": 1}
    assert len(handler.tenant_large_slots) == 0  # nothing kept for idle namespaces


def test_the_large_body_slot_is_held_until_the_delivery_log_copied_the_body(
    signer, github_example, creator, store
) -> None:
    handler = _handler(creator, store=store, max_body_bytes=1_000, max_large_deliveries=1)
    held: list[bool] = []

    class Log(RecordingLog):
        async def record(self, audit: pipeline.Audit, executor: Any) -> None:
            held.append(handler.large_slots.locked() and "body" in audit.extra)
            await super().record(audit, executor)

    log = Log()
    handler.delivery_log = log  # type: ignore[assignment]
    payload = github_example("pull_request.opened")
    payload["pad"] = "x" * 5_000
    reply = _deliver(handler, signer, payload, signature="sha256=" + "0" * 64)
    assert reply.status == 401
    assert held == [True]
    assert not handler.large_slots.locked()  # given back after the log
    assert log.records[0].extra == {}  # and the body with it


def test_an_error_inside_the_streaming_body_read_is_answered_in_the_shape(
    signer, creator, caplog
) -> None:
    """Issue 17, deliverable 3: a fault while the body streams in (after the key named
    the namespace) is answered like any other: 500 in the error shape with its trace id,
    counted, in the delivery log and audited; no stack trace in the answer."""
    handler = _handler(creator)
    log = RecordingLog()
    handler.delivery_log = log  # type: ignore[assignment]

    async def broken() -> AsyncIterator[bytes]:
        yield b'{"a":'
        raise RuntimeError("the connection broke at /internal/path")

    headers = {"content-type": "application/json", "x-github-event": "pull_request"}
    with caplog.at_level("INFO"):
        reply = asyncio.run(handler.handle("github", KEY, headers, broken()))
    assert (reply.status, reply.body["error_code"]) == (500, "InternalError")
    assert reply.body["trace_id"] == reply.headers["X-Trace-Id"]
    assert "/internal/path" not in json.dumps(reply.body)
    assert _sample(handler, "ambient_ingress_unexpected_errors_total", where="delivery") == 1
    (record,) = log.records
    assert (record.outcome, record.status, record.namespace) == ("error", 500, "team-a")
    audits = [json.loads(r.getMessage()) for r in caplog.records if r.name.endswith(".audit")]
    assert [a["trace_id"] for a in audits] == [reply.body["trace_id"]]
    assert creator.creates == 0
