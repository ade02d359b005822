"""Replay decisions: the ingress's own checks, under the current secret and policy."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from ambient.crds.naming import ANNOTATION_REPLAYED_BY, ANNOTATION_REPLAYED_FROM
from ambient.webhooks.ingress import events, replay
from ambient.webhooks.ingress.deliveries import StoredRequest

GUID = "72d3162e-cc78-11e3-81ab-4c9367dc0958"
SPEC: dict[str, Any] = {
    "webhookAuth": {"signingSecretRef": {"name": "signing"}},
    "defaults": {"framework": {"type": "script"}},
}


def _github(signer, payload: dict[str, Any], *, event: str = "pull_request", secret=None):
    body = json.dumps(payload).encode()
    headers = {
        "content-type": "application/json",
        "x-github-event": event,
        "x-github-delivery": GUID,
        "x-hub-signature-256": signer.github(body, secret or signer.secret),
    }
    return StoredRequest.of(
        source="github",
        namespace="team-a",
        received_at=datetime.now(UTC),
        trace_id="trace-1",
        delivery_id=GUID,
        headers=headers,
        body=body,
    )


def test_a_good_request_becomes_the_same_session_the_ingress_makes(signer, github_example) -> None:
    stored = _github(signer, github_example("pull_request.opened"))
    plan = replay.plan(stored, replay.tenant_of("team-a", SPEC), signer.secret, replayed_by="alice")
    assert plan.outcome == "create" and plan.manifest is not None
    meta = plan.manifest["metadata"]
    assert meta["name"] == events.session_name("github", GUID)
    assert meta["namespace"] == "team-a"
    assert meta["annotations"] == {
        ANNOTATION_REPLAYED_BY: "alice",
        ANNOTATION_REPLAYED_FROM: "trace-1",
    }
    assert plan.manifest["spec"]["trigger"]["deliveryId"] == GUID


def test_the_current_secret_must_verify_it(signer, github_example) -> None:
    stored = _github(signer, github_example("pull_request.opened"), secret="old-wrong-secret")
    plan = replay.plan(stored, replay.tenant_of("team-a", SPEC), signer.secret, replayed_by="a")
    assert plan.outcome == "refused" and plan.reason.startswith("InvalidSignature")
    assert plan.manifest is None


def test_no_secret_is_refused_unless_unsigned_is_allowed(signer, github_example) -> None:
    stored = _github(signer, github_example("pull_request.opened"))
    refused = replay.plan(stored, replay.tenant_of("team-a", SPEC), None, replayed_by="a")
    assert refused.outcome == "refused" and "SigningSecretMissing" in refused.reason
    unsigned = {**SPEC, "ingress": {"github": {"allowUnsigned": True}}}
    allowed = replay.plan(stored, replay.tenant_of("team-a", unsigned), None, replayed_by="a")
    assert allowed.outcome == "create"


def test_the_current_policy_selects_the_event(signer, github_example) -> None:
    stored = _github(signer, github_example("pull_request.opened"))
    narrowed = {**SPEC, "ingress": {"github": {"events": ["issues.opened"]}}}
    plan = replay.plan(stored, replay.tenant_of("team-a", narrowed), signer.secret, replayed_by="a")
    assert plan.outcome == "ignored" and "not selected" in plan.reason


def test_a_request_of_another_namespace_is_refused(signer, github_example) -> None:
    stored = _github(signer, github_example("pull_request.opened"))
    plan = replay.plan(stored, replay.tenant_of("team-b", SPEC), signer.secret, replayed_by="a")
    assert plan.outcome == "refused"


def test_slack_is_checked_against_the_time_it_arrived(signer) -> None:
    body = json.dumps(
        {
            "type": "event_callback",
            "event_id": "Ev01",
            "event": {"type": "app_mention", "text": "<@U1> hi", "user": "U2"},
        }
    ).encode()
    arrived = int(time.time()) - 3600  # an hour ago: stale now, fresh when it arrived
    headers = {"content-type": "application/json", **signer.slack(body, ts=arrived)}
    stored = StoredRequest.of(
        source="slack",
        namespace="team-a",
        received_at=datetime.fromtimestamp(arrived, UTC) + timedelta(seconds=2),
        trace_id="t",
        delivery_id="Ev01",
        headers=headers,
        body=body,
    )
    tenant = replay.tenant_of("team-a", SPEC)
    assert replay.plan(stored, tenant, signer.secret, replayed_by="a").outcome == "create"
    tampered = stored.model_copy(update={"received_at": datetime.now(UTC).isoformat()})
    assert replay.plan(tampered, tenant, signer.secret, replayed_by="a").outcome == "refused"
