"""The admission server's HTTP answers: the lean /validate route and the FastAPI rest."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from ambient.common.audit import trail
from ambient.webhooks.admission import app as app_module
from ambient.webhooks.admission.app import create_app
from ambient.webhooks.admission.policy_index import PolicyIndex
from ambient.webhooks.admission.settings import AdmissionSettings

NS = "team-alpha"


def _review(model: str) -> dict[str, Any]:
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "u-42",
            "resource": {"group": "ambient.ai", "version": "v1alpha1", "resource": "sessions"},
            "operation": "CREATE",
            "namespace": NS,
            "name": "s1",
            "userInfo": {"username": "alice", "groups": ["system:authenticated"]},
            "object": {
                "apiVersion": "ambient.ai/v1alpha1",
                "kind": "Session",
                "metadata": {"name": "s1"},
                "spec": {
                    "trigger": {"source": "manual", "event": "test", "payload": {}},
                    "framework": {"type": "script", "config": {"command": ["true"]}},
                    "policy": {"modelConstraints": {"allowed": [model], "budget": "1.00"}},
                },
            },
        },
    }


def _client(synced: bool = True) -> TestClient:
    cache = PolicyIndex()
    if synced:
        cache.replace_all(
            [
                {
                    "metadata": {"name": "policy", "namespace": NS},
                    "spec": {"models": {"allowed": ["claude-3-sonnet"]}},
                }
            ]
        )
    return TestClient(create_app(AdmissionSettings(), cache))


def test_validate_answers_the_review_with_its_uid() -> None:
    with _client() as http:
        ok = http.post("/validate", content=json.dumps(_review("claude-3-sonnet")))
        assert ok.status_code == 200
        assert ok.headers["content-type"] == "application/json"
        body = ok.json()
        assert (body["kind"], body["response"]["uid"], body["response"]["allowed"]) == (
            "AdmissionReview",
            "u-42",
            True,
        )
        no = http.post("/validate", content=json.dumps(_review("gpt-4"))).json()["response"]
        assert no["allowed"] is False and no["status"]["code"] == 403
        assert "gpt-4" in no["status"]["message"]


def test_before_the_cache_syncs_every_review_is_denied() -> None:
    with _client(synced=False) as http:
        answer = http.post("/validate", content=json.dumps(_review("claude-3-sonnet"))).json()
        assert answer["response"]["allowed"] is False
        assert answer["response"]["status"]["code"] == 503
        assert http.get("/readyz").status_code == 503


def test_a_body_that_is_not_a_review_is_400() -> None:
    with _client() as http:
        for body in (b"{nope", b"[]", b""):
            rsp = http.post("/validate", content=body)
            assert rsp.status_code == 400
            answer = rsp.json()  # the documented error shape, with a trace id
            assert set(answer) == {"error_code", "message", "details", "trace_id", "timestamp"}
            assert answer["error_code"] == "NotAReview" and len(answer["trace_id"]) == 32


def test_other_paths_go_to_the_app_and_unknown_ones_deny() -> None:
    with _client() as http:
        assert http.get("/healthz").text == "ok"
        assert "ambient_admission_decisions_total" in http.get("/metrics").text
        answer = http.post("/elsewhere", content=json.dumps({"request": {"uid": "x"}})).json()
        assert answer["response"]["allowed"] is False
        assert "unknown webhook path" in answer["response"]["status"]["message"]
        assert http.get("/validate").status_code == 405


# --- every unexpected error: a denial that says so, or the error shape ---------------------


@pytest.fixture
def audited() -> Iterator[list[dict[str, Any]]]:
    records: list[dict[str, Any]] = []
    trail.add_sink(records.append)
    yield records
    trail.clear_sinks()


def _metric(http: TestClient, line: str) -> bool:
    return line in http.get("/metrics").text


def test_an_error_inside_a_review_denies_it_with_a_trace_id(
    monkeypatch: pytest.MonkeyPatch, audited: list[dict[str, Any]]
) -> None:
    def broken(request: Any, state: Any) -> Any:
        raise RuntimeError("a bug, /var/run/secrets in its message")

    monkeypatch.setattr(app_module, "review", broken)
    with _client() as http:
        rsp = http.post("/validate", content=json.dumps(_review("claude-3-sonnet")))
        assert rsp.status_code == 200  # an AdmissionReview the API server reads: denied
        answer = rsp.json()["response"]
        assert (answer["uid"], answer["allowed"]) == ("u-42", False)
        assert answer["status"]["code"] == 500 and answer["status"]["reason"] == "InternalError"
        message = answer["status"]["message"]
        trace = re.search(r"trace id ([0-9a-f]{32})", message)
        assert trace is not None, message
        assert "Traceback" not in rsp.text and "/var/run" not in rsp.text
        assert _metric(http, 'ambient_admission_unexpected_errors_total{where="review"} 1.0')
        assert _metric(
            http, 'ambient_admission_decisions_total{outcome="error",resource="sessions"} 1.0'
        )
    (record,) = audited
    assert (record["outcome"], record["traceId"]) == ("error", trace.group(1))


@pytest.mark.parametrize(
    "review",
    [
        {"request": {"uid": "u-1", "resource": "sessions"}},
        {"request": ["not", "an", "object"]},
        {"request": {"uid": "u-2", "userInfo": "alice", "resource": {"resource": "sessions"}}},
    ],
)
def test_a_malformed_review_is_denied_not_a_500(review: dict[str, Any]) -> None:
    with _client() as http:
        rsp = http.post("/validate", content=json.dumps(review))
        assert rsp.status_code == 200, rsp.text
        assert rsp.json()["response"]["allowed"] is False


def test_an_error_around_the_review_is_500_in_the_error_shape(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(*args: Any) -> Any:
        raise RuntimeError("a bug")

    with _client() as http:
        monkeypatch.setattr(app_module, "answer", broken)
        rsp = http.post("/validate", content=json.dumps(_review("claude-3-sonnet")))
        _assert_error_shape(rsp)
        monkeypatch.setattr(app_module, "generate_latest", broken)
        _assert_error_shape(http.get("/metrics"))
        monkeypatch.undo()
        assert _metric(http, 'ambient_admission_unexpected_errors_total{where="http"} 2.0')


def _assert_error_shape(rsp: Any) -> None:
    assert rsp.status_code == 500
    body = rsp.json()
    assert set(body) == {"error_code", "message", "details", "trace_id", "timestamp"}
    assert body["error_code"] == "InternalError"
    assert body["trace_id"] == rsp.headers["x-trace-id"]
    assert "Traceback" not in rsp.text and "a bug" not in rsp.text


# --- the body limit and the mutating route -------------------------------------------------


def _limited(limit: int) -> TestClient:
    cache = PolicyIndex()
    cache.replace_all([])
    return TestClient(create_app(AdmissionSettings(max_body_bytes=limit), cache))


def test_a_body_over_the_limit_is_413_declared_or_streamed() -> None:
    with _limited(4096) as http:
        big = b"{" + b" " * 8192 + b"}"
        for path in ("/validate", "/mutate", "/elsewhere"):
            rsp = http.post(path, content=big)
            assert rsp.status_code == 413, path
            assert rsp.json()["error_code"] == "PayloadTooLarge"

        def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it arrives
            for _ in range(16):
                yield b" " * 1024

        rsp = http.post("/validate", content=chunks())
        assert rsp.status_code == 413
        assert (
            http.post("/validate", content=json.dumps(_review("claude-3-sonnet"))).status_code
            == 200
        )


def test_mutate_stamps_the_creator_as_a_json_patch() -> None:
    review = _review("claude-3-sonnet")
    review["request"]["object"]["spec"]["policy"]["approvalRequired"] = True
    with _client() as http:
        answer = http.post("/mutate", content=json.dumps(review)).json()
        plain = http.post("/mutate", content=json.dumps(_review("claude-3-sonnet"))).json()
    assert plain["response"] == {"uid": "u-42", "allowed": True}  # no approval: nothing to stamp
    response = answer["response"]
    assert response["allowed"] is True and response["patchType"] == "JSONPatch"
    ops = json.loads(base64.b64decode(response["patch"]))
    assert ops == [
        {"op": "add", "path": "/metadata/annotations",
         "value": {"ambient.ai/created-by-user": "alice"}}
    ]  # fmt: skip


def test_audit_records_say_whether_the_caller_was_authenticated(
    audited: list[dict[str, Any]], tmp_path: Any
) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("unused here: uvicorn loads it")
    cache = PolicyIndex()
    cache.replace_all([])
    for settings, caller in (
        (AdmissionSettings(), "unverified"),
        (AdmissionSettings(client_ca_file=ca), "api-server-certificate"),
    ):
        with TestClient(create_app(settings, cache)) as http:
            http.post("/validate", content=json.dumps(_review("claude-3-sonnet")))
        assert audited[-1]["details"]["caller"] == caller


def test_a_full_audit_backlog_denies_writes_instead_of_losing_records(memory_store) -> None:
    """Issue 17, finding 9: while the store is down the exporter's backlog is bounded;
    near its limit the webhook denies (fail closed) and every decision it made is written
    once the store is back."""
    from ambient.webhooks.exporting import BackgroundExport  # noqa: PLC0415

    export = BackgroundExport(memory_store, "prod", every=60, max_pending=10)
    trail.add_sink(export.add)
    try:
        cache = PolicyIndex()
        cache.replace_all(
            [
                {
                    "metadata": {"name": "policy", "namespace": NS},
                    "spec": {"models": {"allowed": ["claude-3-sonnet"]}},
                }
            ]
        )
        memory_store.fail = True
        with TestClient(create_app(AdmissionSettings(), cache, export=export)) as http:
            answers = [
                http.post("/validate", content=json.dumps(_review("claude-3-sonnet"))).json()
                for _ in range(12)
            ]
        export.flush()  # fails: kept
        allowed = [a["response"]["allowed"] for a in answers]
        assert allowed == [True] * 9 + [False] * 3
        assert "audit store" in answers[-1]["response"]["status"]["message"]
        assert export.exporter.pending <= 10
        memory_store.fail = False
        export.flush()
        records = [
            json.loads(line)
            for key in memory_store.list_keys("prod/audit/")
            for line in memory_store.get(key).splitlines()
        ]
        assert sum(r["outcome"] == "allowed" for r in records) == 9
    finally:
        trail.clear_sinks()
