from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

import pytest
from standardwebhooks import Webhook

from ambient.webhooks.ingress import events, replay, rules
from ambient.webhooks.ingress.delivery_records import StoredRequest
from ambient.webhooks.ingress.errors import IngressError
from ambient.webhooks.ingress.pipeline import Audit, Pipeline
from ambient.webhooks.ingress.sources import PayloadError
from ambient.webhooks.ingress.sources.generic import parse

from ..conftest import FakeCreator

HEADERS = {"webhook-id": "msg_2b5VsX1", "webhook-timestamp": "1", "webhook-signature": "v1,x"}


def test_the_event_is_the_bodys_type_and_the_id_the_webhook_id_header() -> None:
    assert parse(HEADERS, {"type": "pipeline.failed", "data": {}}) == (
        "pipeline.failed",
        "msg_2b5VsX1",
    )


@pytest.mark.parametrize(
    "body", [{}, {"type": ""}, {"type": " "}, {"type": 3}, {"type": "x" * 129}]
)
def test_a_body_without_a_usable_type_is_refused(body) -> None:
    with pytest.raises(PayloadError, match="type"):
        parse(HEADERS, body)


def test_a_missing_webhook_id_is_refused() -> None:
    with pytest.raises(PayloadError, match="webhook-id"):
        parse({}, {"type": "x"})


def test_through_the_pipeline_steps_every_type_starts_a_session_by_default() -> None:
    tenant = replay.tenant_of("team-a", {"defaults": {"framework": {"type": "script"}}})
    body = json.dumps({"type": "deploy.finished", "data": {"env": "prod"}}).encode()
    decision = rules.decide_or_refuse(tenant, "generic", HEADERS, body, "application/json")
    assert decision.manifest is not None
    trigger = decision.manifest["spec"]["trigger"]
    assert (trigger["event"], trigger["deliveryId"]) == ("deploy.finished", "msg_2b5VsX1")
    assert decision.manifest["metadata"]["name"] == events.session_name("generic", "msg_2b5VsX1")


def test_event_selection_applies_to_the_type() -> None:
    spec = {
        "defaults": {"framework": {"type": "script"}},
        "ingress": {"generic": {"events": ["pipeline.*"]}},
    }
    tenant = replay.tenant_of("team-a", spec)
    body = json.dumps({"type": "deploy.finished"}).encode()
    decision = rules.decide_or_refuse(tenant, "generic", HEADERS, body, "application/json")
    assert (
        decision.ignored == "event deploy.finished is not selected in spec.ingress.generic.events"
    )


def test_a_body_without_type_is_a_422_through_the_pipeline() -> None:
    tenant = replay.tenant_of("team-a", {})
    with pytest.raises(IngressError) as refused:
        rules.decide_or_refuse(tenant, "generic", HEADERS, b"{}", "application/json")
    assert (refused.value.status, refused.value.code) == (422, "MalformedPayload")


def test_without_a_secret_generic_is_refused_unless_allowed_unsigned() -> None:
    tenant = replay.tenant_of("team-a", {})
    with pytest.raises(IngressError) as refused:
        rules.verify(tenant, "generic", b"{}", HEADERS, None)
    assert (refused.value.status, refused.value.code) == (403, "SigningSecretMissing")
    assert "data key 'generic'" in refused.value.message


def test_a_replay_checks_the_timestamp_against_the_time_it_arrived() -> None:
    """An admin replays a refused generic delivery an hour later: the signature's timestamp
    is checked against when it arrived, so it holds; a tampered time of receipt does not."""
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    spec = {
        "webhookAuth": {"signingSecretRef": {"name": "signing"}},
        "defaults": {"framework": {"type": "script"}},
    }
    body = json.dumps({"type": "pipeline.failed"})
    sent = datetime.now(UTC) - timedelta(hours=1)
    headers = {
        "content-type": "application/json",
        "webhook-id": "msg_1",
        "webhook-timestamp": str(int(sent.timestamp())),
        "webhook-signature": Webhook(secret).sign("msg_1", sent, body),
    }
    stored = StoredRequest.of(
        source="generic",
        namespace="team-a",
        received_at=sent + timedelta(seconds=1),
        trace_id="t",
        delivery_id="msg_1",
        headers=headers,
        body=body.encode(),
    )

    def run(request: StoredRequest) -> str:
        tenant = replay.tenant_of("team-a", spec)
        assert replay.refusal(request, tenant) is None
        pipeline = Pipeline(FakeCreator({"generic": secret}), inline_limit=1 << 20)
        audit = Audit(source="generic", trace_id="t")
        result = asyncio.run(
            pipeline.run(
                tenant,
                "generic",
                request.headers,
                request.raw_body(),
                audit,
                signed_at=replay.signed_at(request),
            )
        )
        return result.outcome

    assert run(stored) == "created"
    with pytest.raises(IngressError, match="too old"):
        run(stored.model_copy(update={"received_at": datetime.now(UTC).isoformat()}))
