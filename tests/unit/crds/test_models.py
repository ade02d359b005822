"""The pydantic API models: wire format, validation, money."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pydantic
import pytest

from ambient.crds.models import (
    Framework,
    HistoryEntry,
    ModelConstraints,
    NamespacePolicy,
    Session,
    SessionSpec,
    SessionStatus,
    Trigger,
    Workload,
    money,
)

Body = Callable[..., dict[str, Any]]


def test_session_parses_camel_case_and_round_trips(make_body: Body) -> None:
    body = make_body(timeout_seconds=120, approval_required=True)
    session = Session.model_validate(body)

    assert session.spec.trigger.delivery_id == "d-1"
    assert session.spec.policy.approval_required is True
    assert session.spec.policy.model_constraints.budget == "10.00"
    assert session.spec.timeout_seconds == 120
    assert session.metadata.resource_version == "100"

    dumped = session.model_dump(mode="json")
    spec = dumped["spec"]
    assert spec["trigger"]["deliveryId"] == "d-1"
    assert spec["policy"]["approvalRequired"] is True
    assert spec["policy"]["modelConstraints"]["allowed"] == ["claude-3-sonnet"]
    assert spec["policy"]["toolConstraints"]["allowed"] == ["Bash"]
    assert spec["timeoutSeconds"] == 120
    assert "delivery_id" not in spec["trigger"]
    assert "timeout_seconds" not in spec
    assert Session.model_validate(dumped) == session


def test_status_serialises_camel_case() -> None:
    status = SessionStatus(
        workload=Workload(job_name="j-a1", pod_name="j-a1-xyz"),
        start_time="2026-03-01T12:00:00Z",
        observed_generation=2,
    )
    dumped = status.model_dump(mode="json", exclude_none=True)
    assert dumped["workload"] == {"jobName": "j-a1", "podName": "j-a1-xyz"}
    assert dumped["startTime"] == "2026-03-01T12:00:00Z"
    assert dumped["observedGeneration"] == 2
    assert dumped["usage"] == {"inputTokens": 0, "outputTokens": 0, "cost": "0"}
    assert SessionStatus.model_validate(dumped) == status


def test_snake_case_names_are_accepted_in_python() -> None:
    trigger = Trigger(source="manual", event="run", delivery_id="x")
    assert trigger.delivery_id == "x"
    assert trigger.model_dump()["deliveryId"] == "x"


def test_framework_version_defaults_to_latest() -> None:
    assert Framework(type="script").version == "latest"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0", Decimal(0)),
        ("100", Decimal(100)),
        ("100.00", Decimal("100.00")),
        ("0.5", Decimal("0.5")),
    ],
)
def test_money_parses_decimals(text: str, expected: Decimal) -> None:
    value = money(text)
    assert isinstance(value, Decimal)
    assert value == expected


def test_money_keeps_cents_exact() -> None:
    assert money("0.10") + money("0.20") == money("0.30")


@pytest.mark.parametrize("text", ["1.234", "-1", "abc", "", "01", "1.", ".5", "1e3", " 1"])
def test_money_rejects_malformed(text: str) -> None:
    with pytest.raises(ValueError, match="amount of money"):
        money(text)


@pytest.mark.parametrize("budget", ["1.234", "-1", "abc"])
def test_budget_field_rejects_malformed_money(budget: str) -> None:
    with pytest.raises(pydantic.ValidationError):
        ModelConstraints(budget=budget)


@pytest.mark.parametrize(
    "ftype", ["Claude-Code", "claude_code", "-script", "script-", "", "a" * 64]
)
def test_invalid_framework_type_rejected(make_body: Body, ftype: str) -> None:
    with pytest.raises(pydantic.ValidationError) as info:
        Session.model_validate(make_body(framework=ftype))
    assert any(err["loc"][:3] == ("spec", "framework", "type") for err in info.value.errors())


@pytest.mark.parametrize(
    "path",
    [
        ("bogus",),
        ("trigger", "bogus"),
        ("framework", "bogus"),
        ("policy", "modelConstraints", "bogus"),
    ],
)
def test_extra_fields_rejected_in_spec(make_body: Body, path: tuple[str, ...]) -> None:
    body = make_body()
    node = body["spec"]
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = 1
    with pytest.raises(pydantic.ValidationError, match="Extra inputs are not permitted"):
        Session.model_validate(body)


def test_unknown_top_level_and_metadata_fields_are_ignored(make_body: Body) -> None:
    body = make_body()
    body["somethingNew"] = {"x": 1}
    body["metadata"]["managedFields"] = [{"manager": "kubectl"}]
    session = Session.model_validate(body)
    assert session.metadata.name == "review-pr-42"


def test_spec_requires_trigger_and_framework() -> None:
    with pytest.raises(pydantic.ValidationError) as info:
        SessionSpec.model_validate({})
    missing = {err["loc"][0] for err in info.value.errors() if err["type"] == "missing"}
    assert missing == {"trigger", "framework"}


def test_trigger_source_is_an_enum(make_body: Body) -> None:
    body = make_body()
    body["spec"]["trigger"]["source"] = "email"
    with pytest.raises(pydantic.ValidationError):
        Session.model_validate(body)


def test_history_entry_id_pattern() -> None:
    HistoryEntry(seq=0, id="review-a1/created", timestamp="t", event="WorkloadCreated")
    with pytest.raises(pydantic.ValidationError):
        HistoryEntry(seq=0, id="/leading-slash", timestamp="t", event="E")


def test_history_is_capped_at_max_entries() -> None:
    entries = [{"seq": i, "id": f"e{i}", "timestamp": "t", "event": "E"} for i in range(1001)]
    with pytest.raises(pydantic.ValidationError):
        SessionStatus.model_validate({"history": entries})


def test_namespace_policy_defaults() -> None:
    policy = NamespacePolicy.model_validate({"metadata": {"name": "p"}})
    assert policy.spec.max_concurrent_sessions == 50
    assert policy.spec.retention.audit_logs == "7y"
    assert policy.spec.model_dump()["retention"]["auditLogs"] == "7y"


def test_namespace_policy_api_key_hash_may_be_string_or_list() -> None:
    spec = {"webhookAuth": {"apiKeys": {"github": "ab" * 32, "jira": ["cd" * 32, "ef" * 32]}}}
    policy = NamespacePolicy.model_validate({"spec": spec})
    assert policy.spec.webhook_auth.api_keys.github == "ab" * 32
    assert policy.spec.webhook_auth.api_keys.jira == ["cd" * 32, "ef" * 32]


# --- names of objects a Session or NamespacePolicy names ----------------------------------

WALKS_OUT = "../../team-alpha/secrets/x"


@pytest.mark.parametrize(
    "spec",
    [
        {"webhookAuth": {"signingSecretRef": {"name": WALKS_OUT}}},
        {"notifications": {"signingSecretRef": {"name": WALKS_OUT}}},
        {"webhookAuth": {"signingSecretRef": {"name": "Signing"}}},
        {"webhookAuth": {"signingSecretRef": {"name": "a" * 254}}},
        {"notifications": {"signingSecretRef": {"name": "x/y"}}},
    ],
)
def test_secret_names_are_dns_subdomains(spec: dict[str, Any]) -> None:
    with pytest.raises(pydantic.ValidationError, match="name"):
        NamespacePolicy.model_validate({"spec": spec})


def test_valid_secret_names_are_kept() -> None:
    policy = NamespacePolicy.model_validate(
        {
            "spec": {
                "webhookAuth": {"signingSecretRef": {"name": "ingress.signing-1"}},
                "notifications": {"signingSecretRef": {"name": "a" * 253}},
            }
        }
    )
    assert policy.spec.webhook_auth.signing_secret_ref is not None
    assert policy.spec.webhook_auth.signing_secret_ref.name == "ingress.signing-1"


@pytest.mark.parametrize("location", ["../other-claim", "claim/sub", "Claim", "a" * 254])
def test_a_pvc_location_is_a_claim_name(make_body: Body, location: str) -> None:
    body = make_body()
    body["spec"]["artifacts"] = {"storage": {"type": "pvc", "location": location}}
    with pytest.raises(pydantic.ValidationError, match="PersistentVolumeClaim name"):
        Session.model_validate(body)


@pytest.mark.parametrize(
    ("kind", "location"),
    [("pvc", "artifacts-claim"), ("pvc", ""), ("s3", "bucket/team-a/x"), ("external", "a/../b")],
)
def test_other_locations_are_not_claim_names(make_body: Body, kind: str, location: str) -> None:
    body = make_body()
    body["spec"]["artifacts"] = {"storage": {"type": kind, "location": location}}
    assert Session.model_validate(body).spec.artifacts.storage.location == location
