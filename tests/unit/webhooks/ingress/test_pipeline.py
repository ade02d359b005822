"""The decision the ingress and a replay share, once a request's signature holds."""

from __future__ import annotations

import json
from typing import Any

import pytest

from ambient.webhooks.ingress import events, pipeline, replay

GUID = "72d3162e-cc78-11e3-81ab-4c9367dc0958"
SPEC: dict[str, Any] = {"defaults": {"framework": {"type": "script"}}}


def _headers(event: str) -> dict[str, str]:
    return {
        "content-type": "application/json",
        "x-github-event": event,
        "x-github-delivery": GUID,
    }


def _decide(payload: Any, event: str = "pull_request", spec: dict[str, Any] = SPEC):
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    tenant = replay.tenant_of("team-a", spec)
    return pipeline.decide(tenant, "github", _headers(event), body, "application/json")


def test_a_selected_event_becomes_its_session(github_example) -> None:
    decision = _decide(github_example("pull_request.opened"))
    assert decision.ignored is None and decision.manifest is not None
    assert decision.manifest["metadata"]["name"] == events.session_name("github", GUID)
    assert decision.manifest["metadata"]["namespace"] == "team-a"
    assert decision.manifest["spec"]["framework"]["type"] == "script"
    assert decision.delivery.event == "pull_request.opened"


def test_an_event_the_policy_does_not_select_is_ignored_with_its_reason(github_example) -> None:
    narrowed = {**SPEC, "ingress": {"github": {"events": ["issues.opened"]}}}
    decision = _decide(github_example("pull_request.opened"), spec=narrowed)
    assert decision.manifest is None
    assert decision.ignored is not None and "not selected" in decision.ignored


def test_a_ping_starts_nothing_and_is_not_ignored() -> None:
    decision = _decide({"zen": "Keep it logically awesome.", "hook_id": 1}, event="ping")
    assert decision.delivery.kind == "ping"
    assert decision.manifest is None and decision.ignored is None


def test_a_body_that_is_not_json_raises_for_the_caller_to_answer() -> None:
    with pytest.raises(events.MalformedError):
        _decide(b"{not json")
