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

from ambient.webhooks.ingress import pipeline
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


def test_a_signed_github_delivery_creates_one_session(signer, github_example, creator) -> None:
    handler = _handler(creator)
    reply = _deliver(handler, signer, github_example("pull_request.opened"))
    assert reply.status == 202
    assert reply.body == {"namespace": "team-a", "session": f"github-{GUID}"}
    assert reply.headers["X-Trace-Id"]
    assert list(creator.sessions) == [("team-a", f"github-{GUID}")]
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
    key = f"pfx/team-a/payloads/github/{GUID}.json"
    assert store.objects == {key: body}
    trigger = creator.sessions[("team-a", f"github-{GUID}")]["spec"]["trigger"]
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
