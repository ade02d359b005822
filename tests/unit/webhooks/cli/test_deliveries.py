"""The deliveries CLI over an in-memory store and a fake API (the real ones:
tests/integration/test_ingress_replay.py)."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from ambient.common.audit.export import AuditExporter
from ambient.common.store import keys
from ambient.common.store.s3 import StoreUnavailableError
from ambient.crds.naming import ANNOTATION_REPLAYED_BY
from ambient.webhooks.cli.deliveries import run
from ambient.webhooks.ingress import delivery_records as d
from ambient.webhooks.ingress import events
from ambient.webhooks.ingress.errors import KubeRefusedError, KubeUnavailableError

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
SECRET = "good-secret"
BODY = json.dumps(
    {"action": "opened", "pull_request": {"number": 1, "author_association": "MEMBER"}}
).encode()
DELIVERY = "g-1"


class FakeApi:
    def __init__(self, secret: str = SECRET) -> None:
        self.secret = secret
        self.sessions: dict[str, dict[str, Any]] = {}
        self.refuse = False

    def whoami(self) -> str:
        return "alice"

    def read_policy(self, namespace: str) -> dict[str, Any] | None:
        return {
            "spec": {
                "webhookAuth": {"signingSecretRef": {"name": "signing"}},
                "defaults": {"framework": {"type": "script"}},
            }
        }

    def signing_secret(self, namespace: str, secret: str, source: str) -> str | None:
        return self.secret

    def create_session(self, manifest: dict[str, Any]) -> dict[str, Any] | None:
        if self.refuse:
            raise KubeRefusedError(403, "denied by admission")
        name = manifest["metadata"]["name"]
        if name in self.sessions:
            return self.sessions[name]
        self.sessions[name] = manifest
        return None


def _seed(store, *, outcome: str = "refused", trace: str = "a" * 32, body: bytes = BODY) -> str:
    """What the ingress leaves behind for one delivery an hour before NOW."""
    at = NOW - timedelta(hours=1)
    key = None
    if outcome == "refused":
        key = keys.delivery_request_key(
            "", "team-a", source="github", delivery_id=DELIVERY, body=body, day=at.date()
        )
        sig = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        stored = d.StoredRequest.of(
            source="github",
            namespace="team-a",
            received_at=at,
            trace_id=trace,
            delivery_id=DELIVERY,
            headers={
                "Content-Type": "application/json",
                "X-GitHub-Event": "pull_request",
                "X-GitHub-Delivery": DELIVERY,
                "X-Hub-Signature-256": sig,
            },
            body=body,
        )
        store.put_new(key, stored.encode())
    exporter = AuditExporter(store)
    exporter.add(
        d.delivery_record(
            timestamp=at,
            namespace="team-a",
            source="github",
            event="pull_request.opened",
            delivery_id=DELIVERY,
            session="" if outcome == "refused" else "github-g-1",
            outcome=outcome,
            reason="InvalidSignature" if outcome == "refused" else "",
            status=401 if outcome == "refused" else 202,
            trace_id=trace,
            request_key=key,
        )
    )
    exporter.flush()
    return trace


def _cli(store, api: FakeApi, *argv: str) -> tuple[int, str]:
    return run(list(argv), store, "", NOW, lambda: api)


def test_list_shows_the_refusal_with_its_reason(memory_store) -> None:
    trace = _seed(memory_store)
    code, out = _cli(memory_store, FakeApi(), "list", "-n", "team-a")
    assert code == 0
    line = out.splitlines()[1]
    assert trace in line and "refused" in line and "InvalidSignature" in line
    code, out = _cli(memory_store, FakeApi(), "list", "-n", "team-a", "--outcome", "created")
    assert out.splitlines()[1:] == []


def test_replay_creates_once_and_names_who(memory_store) -> None:
    trace = _seed(memory_store)
    api = FakeApi()
    code, out = _cli(memory_store, api, "replay", "-n", "team-a", trace[:8])
    # GitHub Sessions are named by the body's digest (issue 17, finding 5).
    name = events.body_session_name("github", hashlib.sha256(BODY).hexdigest())
    assert code == 0 and out.startswith(f"created Session team-a/{name}")
    assert api.sessions[name]["metadata"]["annotations"][ANNOTATION_REPLAYED_BY] == "alice"
    code, out = _cli(memory_store, api, "replay", "-n", "team-a", DELIVERY)
    assert code == 0 and "already exists" in out
    assert len(api.sessions) == 1
    later = (NOW + timedelta(minutes=1)).isoformat()  # the replays are stamped NOW
    code, out = _cli(memory_store, api, "list", "-n", "team-a", "--json", "--until", later)
    replays = [json.loads(line) for line in out.splitlines()]
    replays = [r for r in replays if r["action"] == d.ACTION_REPLAY]
    assert sorted((r["actor"], r["outcome"]) for r in replays) == [
        ("alice", "created"),
        ("alice", "exists"),
    ]
    assert all(r["details"]["replayOf"] == trace for r in replays)


def test_a_replay_that_still_fails_creates_nothing(memory_store) -> None:
    trace = _seed(memory_store)
    api = FakeApi(secret="still-wrong")
    code, out = _cli(memory_store, api, "replay", "-n", "team-a", trace)
    assert code == 1 and "InvalidSignature" in out and api.sessions == {}
    api = FakeApi()
    api.refuse = True
    code, out = _cli(memory_store, api, "replay", "-n", "team-a", trace)
    assert code == 1 and "denied by admission" in out


def test_a_large_payload_is_replayed_through_the_store_as_the_ingress_stores_it(
    memory_store,
) -> None:
    large = json.dumps(
        {
            "action": "opened",
            "pull_request": {"number": 1, "author_association": "MEMBER", "body": "x" * 300_000},
        }
    ).encode()
    trace = _seed(memory_store, body=large)
    api = FakeApi()
    code, out = _cli(memory_store, api, "replay", "-n", "team-a", trace)
    assert code == 0, out
    trigger = next(iter(api.sessions.values()))["spec"]["trigger"]
    # Stored by content, as the ingress stores it (issue 17, finding 5).
    key = f"team-a/payloads/github/{hashlib.sha256(large).hexdigest()}.json"
    assert trigger["payload"] == {}
    assert trigger["payloadRef"] == {
        "location": f"s3://memory/{key}",
        "size": len(large),
        "sha256": hashlib.sha256(large).hexdigest(),
    }
    assert memory_store.objects[key] == large
    # A different payload already under that key is not overwritten.
    memory_store.objects[key] = b"{}"
    api = FakeApi()
    code, out = _cli(memory_store, api, "replay", "-n", "team-a", trace)
    assert code == 1 and "different payload" in out and api.sessions == {}


def test_only_kept_requests_can_be_replayed(memory_store) -> None:
    trace = _seed(memory_store, outcome="created", trace="c" * 32)
    code, out = _cli(memory_store, FakeApi(), "replay", "-n", "team-a", trace)
    assert code == 2 and "only refused or failed" in out
    code, out = _cli(memory_store, FakeApi(), "replay", "-n", "team-a", "nope-nope")
    assert code == 2 and "no delivery" in out


def test_show_prints_the_request_without_the_body_unless_asked(memory_store) -> None:
    trace = _seed(memory_store)
    _code, out = _cli(memory_store, FakeApi(), "show", "-n", "team-a", trace)
    shown = json.loads(out)
    assert shown["request"]["bodyBytes"] == len(BODY) and "body" not in shown["request"]
    _, out = _cli(memory_store, FakeApi(), "show", "-n", "team-a", trace, "--body")
    assert json.loads(json.loads(out)["request"]["body"]) == json.loads(BODY)


def test_an_empty_range_is_refused(memory_store) -> None:
    with pytest.raises(SystemExit, match="must be before"):
        _cli(
            memory_store,
            FakeApi(),
            "list",
            "-n",
            "x",
            "--since",
            "2026-03-02",
            "--until",
            "2026-03-01",
        )


def test_an_unreachable_api_server_is_an_error_that_creates_nothing(memory_store) -> None:
    trace = _seed(memory_store)

    class Down(FakeApi):
        def signing_secret(self, namespace: str, secret: str, source: str) -> str | None:
            raise KubeUnavailableError("the API server cannot be reached: ConnectionError")

    api = Down()
    code, out = _cli(memory_store, api, "replay", "-n", "team-a", trace)
    assert code == 1 and "not replayed (error)" in out and "cannot be reached" in out
    assert api.sessions == {}


def test_a_store_outage_keeps_a_large_payload_from_being_replayed(
    memory_store, monkeypatch: pytest.MonkeyPatch
) -> None:
    large = json.dumps(
        {
            "action": "opened",
            "pull_request": {"number": 1, "author_association": "MEMBER", "body": "x" * 300_000},
        }
    ).encode()
    trace = _seed(memory_store, body=large)

    def down(key: str, body: bytes) -> bool:
        raise StoreUnavailableError("connection refused")

    monkeypatch.setattr(memory_store, "put_once", down)
    api = FakeApi()
    code, out = _cli(memory_store, api, "replay", "-n", "team-a", trace)
    assert code == 1 and "cannot be reached to keep the large payload" in out
    assert api.sessions == {}
