"""The app with its delivery log over an in-memory store (the real one: tests/integration)."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from fastapi.testclient import TestClient

from ambient.webhooks.exporting import BackgroundExport
from ambient.webhooks.ingress import events
from ambient.webhooks.ingress.app import create_app
from ambient.webhooks.ingress.delivery_log import DeliveryLog
from ambient.webhooks.ingress.delivery_records import ACTION_DELIVERY, StoredRequest
from ambient.webhooks.ingress.keyindex import KeyIndex, key_hash
from ambient.webhooks.ingress.settings import IngressSettings

KEY = "k-github-team-a"
GUID = "72d3162e-cc78-11e3-81ab-4c9367dc0958"


class FakeBackend:
    def __init__(self, secrets: dict[str, str]) -> None:
        self.sessions: dict[str, dict[str, Any]] = {}
        self.secrets = secrets

    def create_session(self, manifest: dict[str, Any]) -> dict[str, Any] | None:
        name = manifest["metadata"]["name"]
        if name in self.sessions:
            return self.sessions[name]
        self.sessions[name] = manifest
        return None

    def signing_secret(self, namespace: str, secret: str, source: str) -> str | None:
        return self.secrets.get(source)


def post_github(client, signer, payload, *, delivery=GUID, key=KEY):
    body = json.dumps(payload).encode()
    headers = {
        "Content-Type": "application/json",
        "X-GitHub-Event": "pull_request",
        "X-GitHub-Delivery": delivery,
        "X-Hub-Signature-256": signer.github(body),
    }
    return client.post(f"/webhooks/github/{key}", content=body, headers=headers)


def _app(
    signer, store, *, secrets=None, keep_ignored=False, burst=300
) -> tuple[TestClient, BackgroundExport]:
    index = KeyIndex()
    index.replace_all(
        [
            (
                "team-a",
                {
                    "webhookAuth": {
                        "apiKeys": {"github": key_hash(KEY)},
                        "signingSecretRef": {"name": "signing"},
                    },
                    "defaults": {"framework": {"type": "script"}},
                },
            )
        ]
    )
    backend = FakeBackend({"github": signer.secret} if secrets is None else secrets)
    export = BackgroundExport(store, "prod", every=60)
    log = DeliveryLog(
        export,
        keep_ignored=keep_ignored,
        keep_per_second=0.0,
        keep_burst=burst,
        monotonic=lambda: 0,
    )
    app = create_app(index, backend, settings=IngressSettings(), delivery_log=log)
    return TestClient(app), export


def _records(store) -> list[dict[str, Any]]:
    return [
        json.loads(line)
        for key in store.list_keys("prod/audit/")
        for line in store.get(key).splitlines()
    ]


def test_a_refused_delivery_keeps_its_request_and_never_the_key(
    signer, github_example, memory_store
) -> None:
    client, export = _app(signer, memory_store, secrets={"github": "the-wrong-secret"})
    resp = post_github(client, signer, github_example("pull_request.opened"))
    assert resp.status_code == 401
    export.flush()
    (record,) = _records(memory_store)
    assert record["action"] == ACTION_DELIVERY and record["outcome"] == "refused"
    assert record["namespace"] == "team-a"
    assert record["details"]["reason"] == "InvalidSignature"
    assert record["details"]["deliveryId"] == GUID  # read from the header, body unparsed
    body = json.dumps(github_example("pull_request.opened")).encode()
    name = events.body_session_name("github", hashlib.sha256(body).hexdigest())
    assert record["resource"] == f"sessions/{name}"  # the Session a replay makes
    assert record["traceId"] == resp.headers["X-Trace-Id"]
    stored = StoredRequest.decode(memory_store.get(record["details"]["requestKey"]))
    assert stored.headers["x-github-delivery"] == GUID
    assert json.loads(stored.raw_body()) == github_example("pull_request.opened")
    for body in memory_store.objects.values():
        assert KEY.encode() not in body and signer.secret.encode() not in body


def test_accepted_and_ignored_deliveries_are_records_only(
    signer, github_example, memory_store
) -> None:
    client, export = _app(signer, memory_store)
    assert post_github(client, signer, github_example("pull_request.opened")).status_code == 202
    assert post_github(client, signer, github_example("pull_request.opened")).status_code == 200
    closed = post_github(client, signer, {"action": "closed"}, delivery="g-closed")
    assert closed.json()["status"] == "ignored"
    export.flush()
    assert [r["outcome"] for r in _records(memory_store)] == ["created", "duplicate", "ignored"]
    assert memory_store.list_keys("prod/deliveries/") == []


def test_ignored_requests_are_kept_when_asked(signer, memory_store) -> None:
    client, _export = _app(signer, memory_store, keep_ignored=True)
    post_github(client, signer, {"action": "closed"}, delivery="g-closed")
    assert len(memory_store.list_keys("prod/deliveries/team-a/")) == 1


def test_an_unknown_key_is_logged_only(signer, github_example, memory_store) -> None:
    client, export = _app(signer, memory_store)
    resp = post_github(client, signer, github_example("pull_request.opened"), key="nope")
    assert resp.status_code == 401
    export.flush()
    assert memory_store.objects == {}


def test_a_store_outage_changes_no_answer(signer, github_example, memory_store) -> None:
    client, export = _app(signer, memory_store, secrets={"github": "wrong"})
    memory_store.fail = True
    assert post_github(client, signer, github_example("pull_request.opened")).status_code == 401
    export.flush()  # fails: the record stays buffered
    memory_store.fail = False
    export.flush()
    (record,) = _records(memory_store)
    assert "requestKey" not in record["details"]  # not stored, so not claimed
    metrics = client.get("/metrics").text
    assert 'ambient_ingress_requests_stored_total{result="failed"} 1.0' in metrics
    assert "ambient_audit_records_exported_total 1.0" in metrics


def test_a_namespace_s_kept_requests_are_bounded(signer, github_example, memory_store) -> None:
    client, export = _app(signer, memory_store, secrets={"github": "wrong"}, burst=2)
    for n in range(4):
        resp = post_github(client, signer, github_example("pull_request.opened"), delivery=f"g{n}")
        assert resp.status_code == 401  # the answer never depends on the log
    assert len(memory_store.list_keys("prod/deliveries/team-a/")) == 2
    export.flush()
    assert [("requestKey" in r["details"]) for r in _records(memory_store)] == [
        True,
        True,
        False,
        False,
    ]
    assert (
        'ambient_ingress_requests_stored_total{result="limited"} 2.0' in client.get("/metrics").text
    )


def test_a_long_store_outage_applies_backpressure_and_loses_nothing(
    signer, github_example, memory_store
) -> None:
    """Issue 17, finding 9: the exporter's backlog is bounded; past 90% of it the ingress
    refuses new deliveries with 503 (the sender retries) instead of buffering without end,
    and every record of what it took is written once the store is back."""
    client, export = _app(signer, memory_store)
    export.exporter.max_pending = 10
    memory_store.fail = True
    codes = [
        post_github(
            client, signer, {**github_example("pull_request.opened"), "number": n}, delivery=str(n)
        ).status_code
        for n in range(12)
    ]
    export.flush()  # fails: the records stay buffered
    assert codes == [202] * 9 + [503] * 3
    refused = post_github(client, signer, github_example("pull_request.opened"), delivery="x")
    assert refused.json()["error_code"] == "AuditBacklog" and refused.headers["retry-after"]
    assert export.exporter.pending <= 10  # bounded
    memory_store.fail = False
    export.flush()
    created = [r for r in _records(memory_store) if r["outcome"] == "created"]
    assert len(created) == 9  # every delivery it took is in the trail
    after = {**github_example("pull_request.opened"), "number": 100}
    assert post_github(client, signer, after, delivery="after").status_code == 202
