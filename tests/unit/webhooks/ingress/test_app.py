"""The FastAPI app with a fake Kubernetes backend (the real one: tests/integration)."""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlencode

import pytest
from fastapi.testclient import TestClient

from ambient.common.store.s3 import ContentConflictError, StoreUnavailableError
from ambient.webhooks.ingress import events
from ambient.webhooks.ingress.app import create_app
from ambient.webhooks.ingress.errors import KubeUnavailableError
from ambient.webhooks.ingress.keyindex import KeyIndex, key_hash
from ambient.webhooks.ingress.settings import IngressSettings

KEY = "k-github-team-a"
SLACK_KEY = "k-slack-team-a"
GUID = "72d3162e-cc78-11e3-81ab-4c9367dc0958"


class FakeBackend:
    def __init__(self, secrets: dict[str, str] | None = None) -> None:
        self.sessions: dict[tuple[str, str], dict[str, Any]] = {}
        self.secrets = secrets if secrets is not None else {}
        self.down = False
        self.lock = threading.Lock()

    def create_session(self, manifest: dict[str, Any]) -> dict[str, Any] | None:
        if self.down:
            raise KubeUnavailableError("connection refused")
        key = (manifest["metadata"]["namespace"], manifest["metadata"]["name"])
        with self.lock:
            if key in self.sessions:
                return self.sessions[key]
            self.sessions[key] = manifest
        return None

    def signing_secret(self, namespace: str, secret: str, source: str) -> str | None:
        return self.secrets.get(source)


class FakeStore:
    """Create-only objects by key, as objectstore.S3Store keeps them."""

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}
        self.down = False
        self.writes = 0

    def put_once(self, key: str, body: bytes) -> bool:
        if self.down:
            raise StoreUnavailableError("connection refused")
        if key in self.objects:
            if self.objects[key] != body:
                raise ContentConflictError(key)
            return False
        self.objects[key] = body
        self.writes += 1
        return True

    def location(self, key: str) -> str:
        return f"s3://payloads/{key}"


def make(
    signer, *, secrets=None, ingress=None, store=None, **settings
) -> tuple[TestClient, FakeBackend]:
    index = KeyIndex()
    spec: dict[str, Any] = {
        "webhookAuth": {
            "apiKeys": {"github": key_hash(KEY), "slack": key_hash(SLACK_KEY)},
            "signingSecretRef": {"name": "signing"},
        },
        "defaults": {"framework": {"type": "script"}},
    }
    if ingress:
        spec["ingress"] = ingress
    index.replace_all([("team-a", spec)])
    backend = FakeBackend(
        {"github": signer.secret, "slack": signer.secret} if secrets is None else secrets
    )
    app = create_app(
        index, backend, settings=IngressSettings(**settings), store=store, store_prefix="pfx"
    )
    return TestClient(app), backend


def post_github(client, signer, payload, event="pull_request", *, delivery=GUID, key=KEY, **kw):
    body = json.dumps(payload).encode()
    headers = {
        "Content-Type": "application/json",
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery,
        "X-Hub-Signature-256": signer.github(body),
        **kw.pop("headers", {}),
    }
    return client.post(f"/webhooks/github/{key}", content=kw.pop("content", body), headers=headers)


def _name(payload: Any) -> str:
    """The Session a GitHub or Jira body maps to: by its digest (issue 17, finding 5)."""
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return events.body_session_name("github", hashlib.sha256(body).hexdigest())


def assert_error(resp, status: int, code: str) -> None:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert body["error_code"] == code
    assert set(body) == {"error_code", "message", "details", "trace_id", "timestamp"}
    assert body["trace_id"] == resp.headers["x-trace-id"]


def test_signed_pull_request_creates_once_then_answers_200(signer, github_example) -> None:
    client, backend = make(signer)
    payload = github_example("pull_request.opened")
    first = post_github(client, signer, payload)
    assert first.status_code == 202, first.text
    assert first.json() == {"namespace": "team-a", "session": _name(payload)}
    again = post_github(client, signer, payload)
    assert (again.status_code, again.json()) == (200, first.json())
    assert list(backend.sessions) == [("team-a", _name(payload))]
    spec = backend.sessions[("team-a", _name(payload))]["spec"]
    assert spec["trigger"]["event"] == "pull_request.opened"
    assert spec["framework"]["type"] == "script"


def test_bearer_key_works_and_a_missing_one_is_401(signer, github_example) -> None:
    client, _ = make(signer)
    body = json.dumps(github_example("pull_request.opened")).encode()
    headers = {
        "Content-Type": "application/json",
        "X-GitHub-Event": "pull_request",
        "X-GitHub-Delivery": GUID,
        "X-Hub-Signature-256": signer.github(body),
    }
    assert_error(client.post("/webhooks/github", content=body, headers=headers), 401, "MissingKey")
    ok = client.post(
        "/webhooks/github", content=body, headers={**headers, "Authorization": f"Bearer {KEY}"}
    )
    assert ok.status_code == 202


def test_refusals_create_nothing(signer, github_example) -> None:
    client, backend = make(signer, max_body_bytes=30_000)
    payload = github_example("pull_request.opened")
    assert_error(post_github(client, signer, payload, key="nope"), 401, "UnknownKey")
    assert_error(post_github(client, signer, payload, key=SLACK_KEY), 401, "UnknownKey")
    bad = post_github(
        client, signer, payload, headers={"X-Hub-Signature-256": "sha256=" + "0" * 64}
    )
    assert_error(bad, 401, "InvalidSignature")
    big = dict(payload, padding="x" * 40_000)
    assert_error(post_github(client, signer, big), 413, "PayloadTooLarge")
    assert_error(
        post_github(client, signer, payload, headers={"Content-Type": "text/plain"}),
        415,
        "UnsupportedMediaType",
    )
    garbage = b"{not json"
    resp = client.post(
        f"/webhooks/github/{KEY}",
        content=garbage,
        headers={
            "Content-Type": "application/json",
            "X-GitHub-Event": "pull_request",
            "X-GitHub-Delivery": GUID,
            "X-Hub-Signature-256": signer.github(garbage),
        },
    )
    assert_error(resp, 422, "MalformedPayload")
    assert_error(client.post(f"/webhooks/gitlab/{KEY}", content=b"{}"), 404, "UnknownSource")
    assert backend.sessions == {}


def test_no_signing_secret_is_refused_unless_allowed(signer, github_example) -> None:
    payload = github_example("pull_request.opened")
    client, backend = make(signer, secrets={})
    assert_error(post_github(client, signer, payload), 403, "SigningSecretMissing")
    assert backend.sessions == {}
    client, backend = make(signer, secrets={}, ingress={"github": {"allowUnsigned": True}})
    resp = post_github(client, signer, payload, headers={"X-Hub-Signature-256": ""})
    assert resp.status_code == 202


def test_ping_and_ignored_events_answer_200_without_a_session(signer, github_example) -> None:
    client, backend = make(signer)
    assert post_github(client, signer, github_example("ping"), event="ping").json() == {
        "status": "pong"
    }
    resp = post_github(client, signer, github_example("pull_request.closed"))
    assert resp.status_code == 200 and resp.json()["status"] == "ignored"
    assert backend.sessions == {}


def test_api_server_down_is_503_so_the_sender_retries(signer, github_example) -> None:
    client, backend = make(signer)
    backend.down = True
    resp = post_github(client, signer, github_example("pull_request.opened"))
    assert_error(resp, 503, "ApiUnavailable")
    assert resp.headers["retry-after"]


def test_rate_limit_answers_429_with_retry_after(signer, github_example) -> None:
    client, _ = make(signer, rate_per_second=0.5, rate_burst=2)
    payload = github_example("pull_request.opened")
    codes = [
        post_github(client, signer, {**payload, "number": i}, delivery=f"d{i}").status_code
        for i in range(3)
    ]
    assert codes[:2] == [202, 202]
    resp = post_github(client, signer, {**payload, "number": 9}, delivery="d9")
    assert_error(resp, 429, "RateLimited")
    assert int(resp.headers["retry-after"]) >= 1


def test_slack_challenge_stale_timestamp_and_slash_command(signer) -> None:
    client, backend = make(signer)
    body = json.dumps({"type": "url_verification", "challenge": "c-123"}).encode()
    headers = {"Content-Type": "application/json", **signer.slack(body)}
    resp = client.post(f"/webhooks/slack/{SLACK_KEY}", content=body, headers=headers)
    assert resp.json() == {"challenge": "c-123"}
    stale = {"Content-Type": "application/json", **signer.slack(body, ts=1_600_000_000)}
    assert_error(
        client.post(f"/webhooks/slack/{SLACK_KEY}", content=body, headers=stale),
        401,
        "InvalidSignature",
    )
    form = urlencode({"command": "/ambient", "text": "go", "trigger_id": "1.2.abc"}).encode()
    headers = {"Content-Type": "application/x-www-form-urlencoded", **signer.slack(form)}
    resp = client.post(f"/webhooks/slack/{SLACK_KEY}", content=form, headers=headers)
    assert resp.status_code == 202, resp.text
    assert backend.sessions[("team-a", resp.json()["session"])]["spec"]["trigger"]["event"] == (
        "slash_command"
    )


def test_audit_records_have_the_fields_and_never_the_key(signer, github_example, caplog) -> None:
    client, _ = make(signer)
    with caplog.at_level(logging.INFO, logger="ambient.ingress.audit"):
        post_github(client, signer, github_example("pull_request.opened"))
        post_github(client, signer, github_example("pull_request.opened"), key="wrong-key-xyz")
    records = [json.loads(r.getMessage()) for r in caplog.records]
    assert [r["outcome"] for r in records] == ["created", "refused"]
    assert records[0]["namespace"] == "team-a" and records[0]["delivery_id"] == GUID
    assert records[1]["reason"] == "UnknownKey"
    text = caplog.text
    assert KEY not in text and "wrong-key-xyz" not in text and signer.secret not in text


def test_health_readiness_metrics_and_openapi(signer) -> None:
    index = KeyIndex()
    client = TestClient(create_app(index, FakeBackend(), settings=IngressSettings()))
    assert client.get("/healthz").status_code == 200
    assert_error(client.get("/readyz"), 503, "NotReady")
    index.replace_all([])
    assert client.get("/readyz").status_code == 200
    assert "ambient_ingress_deliveries" in client.get("/metrics").text
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/webhooks/{source}/{key}", "/webhooks/{source}", "/healthz"} <= set(paths)


@pytest.mark.parametrize("method", ["get", "put"])
def test_unknown_methods_and_paths_deny_with_the_error_shape(signer, method) -> None:
    client, _ = make(signer)
    resp = getattr(client, method)(f"/webhooks/github/{KEY}")
    assert resp.status_code == 405
    assert_error(client.post("/nowhere"), 404, "NotFound")


def test_a_name_taken_by_another_delivery_is_409_not_success(signer, github_example) -> None:
    client, backend = make(signer)
    name = _name(github_example("pull_request.opened"))
    backend.sessions[("team-a", name)] = {
        "spec": {"trigger": {"source": "github", "deliveryId": "someone-else"}}
    }
    resp = post_github(client, signer, github_example("pull_request.opened"))
    assert_error(resp, 409, "NameTaken")


def test_jira_delivery_signed_with_x_hub_signature(signer) -> None:
    index = KeyIndex()
    index.replace_all(
        [
            (
                "team-j",
                {
                    "webhookAuth": {
                        "apiKeys": {"jira": key_hash("jk")},
                        "signingSecretRef": {"name": "s"},
                    },
                    "defaults": {"framework": {"type": "script"}},
                },
            )
        ]
    )
    backend = FakeBackend({"jira": signer.secret})
    client = TestClient(create_app(index, backend, settings=IngressSettings()))
    body = json.dumps({"webhookEvent": "comment_created", "comment": {"body": "hi"}}).encode()
    headers = {
        "Content-Type": "application/json",
        "X-Atlassian-Webhook-Identifier": "77",
        "X-Hub-Signature": signer.jira(body),
    }
    resp = client.post(
        "/webhooks/jira", content=body, headers={**headers, "Authorization": "Bearer jk"}
    )
    assert resp.status_code == 202, resp.text
    jira_name = events.body_session_name("jira", hashlib.sha256(body).hexdigest())
    assert resp.json() == {"namespace": "team-j", "session": jira_name}
    forged = {**headers, "X-Hub-Signature": signer.jira(body, secret="guess")}
    assert_error(
        client.post("/webhooks/jira/jk", content=body, headers=forged), 401, "InvalidSignature"
    )


# --- payloads too large for the Session: the artifact store -----------------------------


def _large(github_example, size: int) -> dict[str, Any]:
    payload = github_example("pull_request.opened")
    payload["pull_request"]["body"] = "x" * size
    return payload


def test_a_large_payload_is_stored_and_referenced(signer, github_example) -> None:
    store = FakeStore()
    client, backend = make(signer, store=store, max_body_bytes=10_000)
    payload = _large(github_example, 50_000)
    first = post_github(client, signer, payload)
    assert first.status_code == 202, first.text
    body = json.dumps(payload).encode()
    key = f"pfx/team-a/payloads/github/{hashlib.sha256(body).hexdigest()}.json"
    assert store.objects == {key: body}
    trigger = backend.sessions[("team-a", _name(payload))]["spec"]["trigger"]
    assert trigger["payload"] == {}
    assert trigger["payloadRef"] == {
        "location": f"s3://payloads/{key}",
        "size": len(body),
        "sha256": hashlib.sha256(body).hexdigest(),
    }
    assert trigger["event"] == "pull_request.opened"  # mapped from the parsed body
    again = post_github(client, signer, payload)
    assert (again.status_code, again.json()) == (200, first.json())
    assert store.writes == 1


def test_small_payloads_stay_inside_the_session(signer, github_example) -> None:
    store = FakeStore()
    client, backend = make(signer, store=store, max_body_bytes=100_000)
    payload = github_example("pull_request.opened")
    assert post_github(client, signer, payload).status_code == 202
    assert store.objects == {}
    assert "payloadRef" not in backend.sessions[("team-a", _name(payload))]["spec"]["trigger"]


def test_above_the_stored_limit_is_413_and_nothing_is_stored(signer, github_example) -> None:
    store = FakeStore()
    client, backend = make(signer, store=store, max_body_bytes=10_000, max_stored_body_bytes=40_000)
    resp = post_github(client, signer, _large(github_example, 50_000))
    assert_error(resp, 413, "PayloadTooLarge")
    assert "the most the ingress takes" in resp.json()["message"]
    assert resp.json()["details"] == {"limit": 40_000}
    assert store.objects == {} and backend.sessions == {}


def test_without_a_store_large_payloads_stay_413(signer, github_example) -> None:
    client, backend = make(signer, max_body_bytes=10_000)
    resp = post_github(client, signer, _large(github_example, 50_000))
    assert_error(resp, 413, "PayloadTooLarge")
    assert "need an artifact store" in resp.json()["message"]
    assert backend.sessions == {}


def test_store_down_is_503_and_no_session(signer, github_example) -> None:
    store = FakeStore()
    store.down = True
    client, backend = make(signer, store=store, max_body_bytes=10_000)
    resp = post_github(client, signer, _large(github_example, 50_000))
    assert_error(resp, 503, "StoreUnavailable")
    assert resp.headers["retry-after"] == "5"
    assert backend.sessions == {}


def test_a_bad_signature_stores_nothing(signer, github_example) -> None:
    store = FakeStore()
    client, backend = make(signer, store=store, max_body_bytes=10_000)
    resp = post_github(
        client,
        signer,
        _large(github_example, 50_000),
        headers={"X-Hub-Signature-256": "sha256=" + "0" * 64},
    )
    assert_error(resp, 401, "InvalidSignature")
    assert store.objects == {} and backend.sessions == {}


def test_large_payloads_are_stored_by_content(signer, github_example) -> None:
    """GitHub and Jira payloads are keyed by their digest, as their Sessions are named
    (issue 17, finding 5): another body is another object and another Session, the same
    body under another delivery id is neither."""
    store = FakeStore()
    client, backend = make(signer, store=store, max_body_bytes=10_000)
    assert post_github(client, signer, _large(github_example, 50_000)).status_code == 202
    assert post_github(client, signer, _large(github_example, 60_000)).status_code == 202
    replayed = post_github(client, signer, _large(github_example, 60_000), delivery="replayed")
    assert replayed.status_code == 200
    assert len(store.objects) == 2 and len(backend.sessions) == 2


class SlowStore(FakeStore):
    """Counts how many large payloads are being stored at the same time."""

    def __init__(self) -> None:
        super().__init__()
        self.active = 0
        self.most = 0
        self.guard = threading.Lock()

    def put_once(self, key: str, body: bytes) -> bool:
        with self.guard:
            self.active += 1
            self.most = max(self.most, self.active)
        try:
            threading.Event().wait(0.2)  # overlap, if the app allowed it
            return super().put_once(key, body)
        finally:
            with self.guard:
                self.active -= 1


def test_large_deliveries_are_taken_a_few_at_a_time(signer, github_example) -> None:
    store = SlowStore()
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
    backend = FakeBackend({"github": signer.secret})
    app = create_app(
        index,
        backend,
        settings=IngressSettings(max_body_bytes=10_000, max_large_deliveries=1),
        store=store,
    )
    payload = _large(github_example, 50_000)
    ids = [f"{GUID[:-1]}{i}" for i in range(3)]

    def post(d: str) -> int:  # one event each: a body of its own
        return post_github(client, signer, {**payload, "number": d}, delivery=d).status_code

    with TestClient(app) as client, ThreadPoolExecutor(3) as pool:
        answers = list(pool.map(post, ids))
        # Slots are given back, also after a refusal.
        bad = post_github(
            client, signer, payload, delivery="x", headers={"X-Hub-Signature-256": "sha256=0"}
        )
        assert bad.status_code == 401
        assert post(f"{GUID[:-1]}9") == 202
    assert answers == [202, 202, 202]
    assert store.most == 1 and len(store.objects) == 4


# --- every unexpected error answers the error shape (issue 17, finding 13) ---------------


@pytest.mark.parametrize(
    "signature",
    ["sha256=ü".encode(), "sha256=é".encode("latin-1"), b"sha256=\xff" + b"0" * 63],
)
def test_a_non_ascii_signature_header_is_401_json(signer, github_example, signature) -> None:
    client, backend = make(signer)
    resp = post_github(
        client,
        signer,
        github_example("pull_request.opened"),
        headers={"X-Hub-Signature-256": signature},
    )
    assert_error(resp, 401, "InvalidSignature")
    assert backend.sessions == {}


def test_an_error_outside_the_handler_is_500_json_counted_and_audited(
    signer, github_example, caplog
) -> None:
    client, backend = make(signer)
    ingress = client.app.state.handler

    async def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("a bug past the handler's own catch-all")

    ingress.handle = broken
    with caplog.at_level(logging.INFO):
        resp = post_github(client, signer, github_example("pull_request.opened"))
    assert_error(resp, 500, "InternalError")
    assert "Traceback" not in resp.text and "a bug" not in resp.text
    trace = resp.json()["trace_id"]
    metric = ingress.registry.get_sample_value
    assert metric("ambient_ingress_unexpected_errors_total", {"where": "http"}) == 1
    assert metric("ambient_ingress_deliveries_total", {"source": "github", "outcome": "error"}) == 1
    audits = [json.loads(r.getMessage()) for r in caplog.records if r.name.endswith(".audit")]
    assert [(a["outcome"], a["trace_id"]) for a in audits] == [("error", trace)]
    # the server goes on answering
    del ingress.handle
    assert post_github(client, signer, github_example("pull_request.opened")).status_code == 202
    assert len(backend.sessions) == 1
