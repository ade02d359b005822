"""The admission server's HTTP answers: the lean /validate route and the FastAPI rest."""

from __future__ import annotations

import json
from typing import Any

from fastapi.testclient import TestClient

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
            assert rsp.json() == {"error": "the body is not an AdmissionReview"}


def test_other_paths_go_to_the_app_and_unknown_ones_deny() -> None:
    with _client() as http:
        assert http.get("/healthz").text == "ok"
        assert "ambient_admission_decisions_total" in http.get("/metrics").text
        answer = http.post("/mutate", content=json.dumps({"request": {"uid": "x"}})).json()
        assert answer["response"]["allowed"] is False
        assert "unknown webhook path" in answer["response"]["status"]["message"]
        assert http.get("/validate").status_code == 405
