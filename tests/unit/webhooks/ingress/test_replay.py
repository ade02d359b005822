"""Replays: the ingress's own pipeline, run again under the current secret and policy."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from ambient.crds.naming import (
    ANNOTATION_REPLAYED_BY,
    ANNOTATION_REPLAYED_FROM,
    ANNOTATION_TRACE_ID,
)
from ambient.webhooks.ingress import events, replay
from ambient.webhooks.ingress.delivery_records import StoredRequest
from ambient.webhooks.ingress.errors import IngressError
from ambient.webhooks.ingress.pipeline import Audit, Pipeline, Result

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


def _replay(stored: StoredRequest, spec: dict[str, Any], creator, who: str = "alice") -> Result:
    """What cli/deliveries.py does once the stored request may be replayed at all."""
    tenant = replay.tenant_of(stored.namespace, spec)
    assert replay.refusal(stored, tenant) is None
    pipeline = Pipeline(creator, inline_limit=256 * 1024)
    return asyncio.run(
        pipeline.run(
            tenant,
            stored.source,
            stored.headers,
            stored.raw_body(),
            Audit(source=stored.source, trace_id=stored.trace_id),
            signed_at=replay.signed_at(stored),
            annotations=replay.annotations_for(stored, who),
        )
    )


def test_a_good_request_becomes_the_same_session_the_ingress_makes(
    signer, github_example, creator
) -> None:
    stored = _github(signer, github_example("pull_request.opened"))
    assert _replay(stored, SPEC, creator).outcome == "created"
    (manifest,) = creator.sessions.values()
    meta = manifest["metadata"]
    digest = hashlib.sha256(stored.raw_body()).hexdigest()
    assert meta["name"] == events.body_session_name("github", digest)
    assert meta["namespace"] == "team-a"
    assert meta["annotations"] == {
        ANNOTATION_REPLAYED_BY: "alice",
        ANNOTATION_REPLAYED_FROM: "trace-1",
        ANNOTATION_TRACE_ID: "trace-1",  # the original delivery's: its log lines join up
    }
    assert manifest["spec"]["trigger"]["deliveryId"] == GUID
    assert _replay(stored, SPEC, creator).outcome == "duplicate"
    assert len(creator.sessions) == 1


def test_the_current_secret_must_verify_it(signer, github_example, creator) -> None:
    stored = _github(signer, github_example("pull_request.opened"), secret="old-wrong-secret")
    with pytest.raises(IngressError) as refused:
        _replay(stored, SPEC, creator)
    assert refused.value.code == "InvalidSignature"
    assert creator.sessions == {}


def test_no_secret_is_refused_unless_unsigned_is_allowed(signer, github_example, creator) -> None:
    stored = _github(signer, github_example("pull_request.opened"))
    creator.secrets.clear()
    with pytest.raises(IngressError) as refused:
        _replay(stored, SPEC, creator)
    assert refused.value.code == "SigningSecretMissing"
    unsigned = {**SPEC, "ingress": {"github": {"allowUnsigned": True}}}
    assert _replay(stored, unsigned, creator).outcome == "created"


def test_the_current_policy_selects_the_event(signer, github_example, creator) -> None:
    stored = _github(signer, github_example("pull_request.opened"))
    narrowed = {**SPEC, "ingress": {"github": {"events": ["issues.opened"]}}}
    result = _replay(stored, narrowed, creator)
    assert result.outcome == "ignored" and "not selected" in (result.decision.ignored or "")
    assert creator.creates == 0


def test_a_request_of_another_namespace_or_source_is_refused(signer, github_example) -> None:
    stored = _github(signer, github_example("pull_request.opened"))
    assert replay.refusal(stored, replay.tenant_of("team-b", SPEC)) is not None
    odd = stored.model_copy(update={"source": "gitlab"})
    assert "unknown source" in (replay.refusal(odd, replay.tenant_of("team-a", SPEC)) or "")


def test_slack_is_checked_against_the_time_it_arrived(signer, creator) -> None:
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
    assert _replay(stored, SPEC, creator).outcome == "created"
    tampered = stored.model_copy(update={"received_at": datetime.now(UTC).isoformat()})
    with pytest.raises(IngressError) as refused:
        _replay(tampered, SPEC, creator)
    assert refused.value.code == "InvalidSignature"


def test_only_slack_gets_a_time_of_receipt(signer, github_example) -> None:
    assert replay.signed_at(_github(signer, github_example("pull_request.opened"))) is None
