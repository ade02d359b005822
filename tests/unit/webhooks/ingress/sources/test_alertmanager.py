from __future__ import annotations

import asyncio
import copy
import json
from pathlib import Path
from typing import Any

import pydantic
import pytest

from ambient.webhooks.ingress import events, replay, rules
from ambient.webhooks.ingress.errors import IngressError
from ambient.webhooks.ingress.pipeline import Audit, Pipeline
from ambient.webhooks.ingress.sources import PayloadError
from ambient.webhooks.ingress.sources.alertmanager import notification_id, parse

from ..conftest import FakeCreator

FIXTURES = Path(__file__).parents[4] / "fixtures" / "alertmanager"


def _load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text())
    return data


@pytest.fixture
def firing() -> dict[str, Any]:
    """A notification Alertmanager v0.31.1 really sent (captured by its webhook receiver)."""
    return _load("firing")


def test_a_real_firing_notification_parses_to_its_status_and_a_digest(firing) -> None:
    event, delivery = parse(firing)
    assert event == "firing"
    assert len(delivery) == 64
    assert delivery == delivery.lower()


def test_the_id_is_stable_across_what_a_repeat_changes(firing) -> None:
    """Alertmanager's repeats differ in nothing that makes the identity, and the order of
    alerts, the receiver, annotations or truncatedAlerts do not take part."""
    _, first = parse(firing)
    again = copy.deepcopy(firing)
    again["alerts"] = list(reversed(again["alerts"]))
    again["commonAnnotations"] = {"summary": "changed wording"}
    again["truncatedAlerts"] = 3
    for alert in again["alerts"]:
        alert["endsAt"] = "2030-01-01T00:00:00Z"
    assert parse(again)[1] == first


@pytest.mark.parametrize(
    "change",
    [
        lambda p: p.update(status="resolved"),
        lambda p: p.update(groupKey=p["groupKey"] + "x"),
        lambda p: p["alerts"][0].update(fingerprint="0" * 16),
        lambda p: p["alerts"][0].update(startsAt="2031-01-01T00:00:00Z"),
        lambda p: p["alerts"].append({**p["alerts"][0], "fingerprint": "f" * 16}),
    ],
    ids=["status", "group", "fingerprint", "refired", "alert-joined"],
)
def test_what_makes_a_new_notification_makes_a_new_id(firing, change) -> None:
    _, first = parse(firing)
    other = copy.deepcopy(firing)
    change(other)
    assert parse(other)[1] != first


def test_the_digest_is_pinned() -> None:
    """It names Sessions: a change of encoding would make every repeat a new Session."""
    assert notification_id("g", "firing", [("fp", "2026-01-01T00:00:00Z")]) == (
        "c20995bfe265ca7198983915ba03caf99a89c16269bcfe052d6d239081ac6457"
    )


@pytest.mark.parametrize("version", [None, "3", 4, "5", ""])
def test_anything_but_version_4_is_refused_clearly(firing, version) -> None:
    if version is None:
        del firing["version"]
    else:
        firing["version"] = version
    with pytest.raises(PayloadError, match=r"version .* is not supported.*'4'"):
        parse(firing)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda p: p.update(status="pending"), "neither firing nor resolved"),
        (lambda p: p.pop("groupKey"), "no groupKey"),
        (lambda p: p.update(alerts=[]), "no alerts"),
        (lambda p: p.update(alerts="x"), "no alerts"),
        (lambda p: p["alerts"].append("x"), r"alerts\[1\] is not an object"),
        (lambda p: p["alerts"][0].pop("fingerprint"), "no fingerprint"),
        (lambda p: p["alerts"][0].update(startsAt=7), "no startsAt"),
    ],
)
def test_a_payload_missing_what_identifies_it_is_refused(firing, change, message) -> None:
    change(firing)
    with pytest.raises(PayloadError, match=message):
        parse(firing)


# --- through the pipeline's pure steps (rules), as the ingress and a replay run them ---

SPEC: dict[str, Any] = {"defaults": {"framework": {"type": "script"}}}


def _decide(payload: dict[str, Any], spec: dict[str, Any] = SPEC) -> rules.DeliveryDecision:
    tenant = replay.tenant_of("team-a", spec)
    body = json.dumps(payload).encode()
    return rules.decide_or_refuse(tenant, "alertmanager", {}, body, "application/json")


def test_a_firing_group_becomes_a_session_named_by_its_digest(firing) -> None:
    decision = _decide(firing)
    assert decision.manifest is not None
    _, digest = parse(firing)
    assert decision.manifest["metadata"]["name"] == events.session_name("alertmanager", digest)
    trigger = decision.manifest["spec"]["trigger"]
    assert (trigger["source"], trigger["event"], trigger["deliveryId"]) == (
        "alertmanager",
        "firing",
        digest,
    )


def test_resolved_is_ignored_by_default_and_selected_on_request() -> None:
    resolved = _load("resolved")
    assert _decide(resolved).ignored == (
        "event resolved is not selected in spec.ingress.alertmanager.events"
    )
    spec = {**SPEC, "ingress": {"alertmanager": {"events": ["firing", "resolved"]}}}
    decision = _decide(resolved, spec)
    assert decision.manifest is not None
    assert (
        decision.manifest["metadata"]["name"]
        != _decide(_load("firing")).manifest["metadata"]["name"]
    )


def test_version_3_is_refused_as_malformed_with_the_reason() -> None:
    with pytest.raises(IngressError) as refused:
        _decide({**_load("firing"), "version": "3"})
    assert (refused.value.status, refused.value.code) == (422, "MalformedPayload")
    assert "version '3' is not supported" in refused.value.message


def test_the_key_alone_authenticates_alertmanager_even_with_a_signing_secret_set() -> None:
    tenant = replay.tenant_of("team-a", SPEC)
    rules.verify(tenant, "alertmanager", b"{}", {}, None)
    rules.verify(tenant, "alertmanager", b"{}", {}, "a secret for other sources")


def test_alertmanager_sends_form_bodies_never() -> None:
    tenant = replay.tenant_of("team-a", SPEC)
    with pytest.raises(IngressError) as refused:
        rules.decide_or_refuse(
            tenant, "alertmanager", {}, b"a=b", "application/x-www-form-urlencoded"
        )
    assert refused.value.status == 415


def test_the_pipeline_reads_no_signing_secret_for_alertmanager(firing) -> None:
    """The key alone authenticates: a namespace with a signing Secret for its other
    sources gets no Secret read per Alertmanager delivery, and the Session is created."""
    spec = {**SPEC, "webhookAuth": {"signingSecretRef": {"name": "signing"}}}
    creator = FakeCreator({"github": "s"})
    pipeline = Pipeline(creator, inline_limit=1 << 20)
    body = json.dumps(firing).encode()
    headers = {"content-type": "application/json"}
    tenant = replay.tenant_of("team-a", spec)
    outcomes = [
        asyncio.run(
            pipeline.run(tenant, "alertmanager", headers, body, Audit("alertmanager", "t"))
        ).outcome
        for _ in range(2)
    ]
    assert outcomes == ["created", "duplicate"]
    assert (creator.secret_reads, creator.creates, len(creator.sessions)) == (0, 2, 1)


def test_a_misspelt_status_is_refused_with_the_policy() -> None:
    with pytest.raises(pydantic.ValidationError, match="firing"):
        replay.tenant_of("team-a", {"ingress": {"alertmanager": {"events": ["firng"]}}})
