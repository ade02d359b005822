"""The pipeline's pure steps, which the ingress and a replay share: verify, decide, settle."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest

from ambient.webhooks.ingress import events, replay, rules
from ambient.webhooks.ingress.errors import IngressError

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
    return rules.decide(tenant, "github", _headers(event), body, "application/json")


def test_a_selected_event_becomes_its_session(github_example) -> None:
    decision = _decide(github_example("pull_request.opened"))
    assert decision.ignored is None and decision.manifest is not None
    body = json.dumps(github_example("pull_request.opened")).encode()
    digest = hashlib.sha256(body).hexdigest()
    assert decision.manifest["metadata"]["name"] == events.body_session_name("github", digest)
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


def test_an_unreadable_body_is_refused_with_its_code() -> None:
    tenant = replay.tenant_of("team-a", SPEC)
    with pytest.raises(IngressError) as refused:
        rules.decide_or_refuse(tenant, "github", _headers("push"), b"{no", "application/json")
    assert (refused.value.status, refused.value.code) == (422, "MalformedPayload")


def test_a_signature_must_match_the_secret(signer) -> None:
    tenant = replay.tenant_of("team-a", SPEC)
    body = b'{"zen": "x"}'
    good = {"x-hub-signature-256": signer.github(body)}
    rules.verify(tenant, "github", body, good, signer.secret)
    with pytest.raises(IngressError) as refused:
        rules.verify(tenant, "github", body, good, "another secret")
    assert (refused.value.status, refused.value.code) == (401, "InvalidSignature")


def test_without_a_secret_only_an_unsigned_source_passes() -> None:
    with pytest.raises(IngressError) as refused:
        rules.verify(replay.tenant_of("team-a", SPEC), "github", b"{}", {}, None)
    assert (refused.value.status, refused.value.code) == (403, "SigningSecretMissing")
    unsigned = {**SPEC, "ingress": {"github": {"allowUnsigned": True}}}
    rules.verify(replay.tenant_of("team-a", unsigned), "github", b"{}", {}, None)


def test_slack_is_checked_against_the_given_time(signer) -> None:
    tenant = replay.tenant_of("team-a", SPEC)
    body = b"token=x&command=%2Fask"
    headers = {k.lower(): v for k, v in signer.slack(body, ts=1_000_000).items()}
    rules.verify(tenant, "slack", body, headers, signer.secret, signed_at=1_000_030.0)
    with pytest.raises(IngressError, match="five minutes"):
        rules.verify(tenant, "slack", body, headers, signer.secret, signed_at=1_009_000.0)


def test_a_create_settles_as_created_duplicate_or_conflict(github_example) -> None:
    decision = _decide(github_example("pull_request.opened"))
    assert decision.manifest is not None
    assert rules.settle(None, decision.delivery) == "created"
    assert rules.settle(decision.manifest, decision.delivery) == "duplicate"
    other = _decide(github_example("pull_request.opened"))
    assert other.manifest is not None
    other.manifest["spec"]["trigger"]["deliveryId"] = "someone-else"
    other.manifest["spec"]["trigger"]["payload"] = {"another": "body"}
    assert rules.settle(other.manifest, decision.delivery) == "conflict"
