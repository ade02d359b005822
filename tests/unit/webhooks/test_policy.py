"""evaluate(): every rule passing and failing, several at once, and purity."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from ambient.crds.models import NamespacePolicy, Session, StorageType
from ambient.runners.registry import load
from ambient.webhooks.policy import StoragePolicy, Usage, UserInfo, evaluate

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
USER = UserInfo("alice", ("team-alpha-devs",))
REGISTRY = load()


def policy(**spec: Any) -> NamespacePolicy:
    base: dict[str, Any] = {
        "models": {
            "allowed": ["claude-3-sonnet", "claude-3-haiku"],
            "budget": {"monthly": "1000.00", "currency": "USD"},
        },
        "tools": {"allowed": ["bash", "edit", "read"], "blocked": ["exec"]},
    }
    base.update(spec)
    return NamespacePolicy.model_validate(
        {"metadata": {"name": "policy", "namespace": "team-alpha"}, "spec": base}
    )


def session(**policy_spec: Any) -> Session:
    constraints: dict[str, Any] = {
        "modelConstraints": {"allowed": ["claude-3-sonnet"], "budget": "100.00"},
        "toolConstraints": {"allowed": ["bash", "read"]},
    }
    constraints.update(policy_spec)
    storage = constraints.pop("storage", {"type": "s3", "location": "bucket/team-alpha/x/"})
    framework = constraints.pop("framework", {"type": "claude-code"})
    return Session.model_validate(
        {
            "metadata": {"name": "s", "namespace": "team-alpha"},
            "spec": {
                "trigger": {"source": "manual", "event": "test"},
                "framework": framework,
                "policy": constraints,
                "artifacts": {"storage": storage},
            },
        }
    )


def codes(pol: NamespacePolicy | None, sess: Session, usage: Usage | None = None, **kw: Any):
    decision = evaluate(pol, sess, USER, usage, REGISTRY, now=NOW, **kw)
    return [v.code for v in decision.violations], decision


def test_a_compliant_session_is_allowed() -> None:
    found, decision = codes(policy(), session())
    assert found == []
    assert decision.allowed
    assert decision.policy_name == "policy"
    assert decision.reason == ""


def test_no_policy_denies_by_default_with_an_actionable_message() -> None:
    found, decision = codes(None, session())
    assert found == ["NoPolicy"]
    assert not decision.allowed
    assert "team-alpha has no NamespacePolicy" in decision.reason


def test_a_default_policy_applies_when_the_namespace_has_none() -> None:
    found, decision = codes(None, session(), default_policy=policy())
    assert found == []
    assert decision.allowed


def test_the_namespace_policy_wins_over_the_default() -> None:
    strict = policy(models={"allowed": ["claude-3-haiku"]})
    found, _ = codes(strict, session(), default_policy=policy())
    assert found == ["ModelNotAllowed"]


def test_model_not_allowed_names_the_model_namespace_and_allowed_list() -> None:
    sess = session(
        modelConstraints={"allowed": ["claude-3-sonnet", "claude-3-opus"], "budget": "1.00"}
    )
    found, decision = codes(policy(), sess)
    assert found == ["ModelNotAllowed"]
    violation = decision.violations[0]
    assert violation.field == "spec.policy.modelConstraints.allowed[1]"
    assert violation.message == (
        "model claude-3-opus is not allowed in namespace team-alpha "
        "(allowed: claude-3-sonnet, claude-3-haiku)"
    )


@pytest.mark.parametrize(
    ("asked", "spent", "month", "expected"),
    [
        ("100.00", "0", "2026-11", []),
        ("40.00", "960.00", "2026-11", []),  # exactly what is left
        ("40.01", "960.00", "2026-11", ["BudgetExceeded"]),  # one cent over
        ("1000.00", "999.99", "2026-10", []),  # last month's spend does not count
        ("1000.01", "0", "2026-11", ["BudgetExceeded"]),
        ("1.00", "1200.00", "2026-11", ["BudgetExceeded"]),  # overspent: nothing left
    ],
)
def test_budget_fits_what_is_left_this_month(
    asked: str, spent: str, month: str, expected: list[str]
) -> None:
    sess = session(modelConstraints={"allowed": [], "budget": asked})
    found, _ = codes(policy(), sess, Usage(month, Decimal(spent)))
    assert found == expected


def test_budget_message_shows_money_with_currency() -> None:
    sess = session(modelConstraints={"allowed": [], "budget": "100.00"})
    _, decision = codes(policy(), sess, Usage("2026-11", Decimal("960.00")))
    assert decision.reason == (
        "budget 100.00 USD exceeds the 40.00 USD left this month in namespace team-alpha "
        "(monthly 1000.00 USD, spent 960.00 USD)"
    )


def test_a_session_without_a_budget_is_refused_when_the_namespace_has_one() -> None:
    found, decision = codes(policy(), session(modelConstraints={"allowed": []}))
    assert found == ["BudgetRequired"]
    assert "spec.policy.modelConstraints.budget" in decision.reason


def test_no_namespace_budget_means_no_limit() -> None:
    unbounded = policy(models={"allowed": ["claude-3-sonnet"]})
    found, _ = codes(unbounded, session(modelConstraints={"allowed": []}))
    assert found == []


@pytest.mark.parametrize(
    ("tools", "expected"),
    [
        (["bash"], []),
        (["exec"], ["ToolBlocked"]),
        (["write"], ["ToolNotAllowed"]),
        (["bash", "exec", "write"], ["ToolBlocked", "ToolNotAllowed"]),
    ],
)
def test_tools_are_a_subset_of_allowed_and_none_blocked(
    tools: list[str], expected: list[str]
) -> None:
    found, _ = codes(policy(), session(toolConstraints={"allowed": tools}))
    assert found == expected


def test_blocked_wins_over_allowed() -> None:
    both = policy(tools={"allowed": ["bash", "exec"], "blocked": ["exec"]})
    found, decision = codes(both, session(toolConstraints={"allowed": ["exec"]}))
    assert found == ["ToolBlocked"]
    assert decision.violations[0].message == "tool exec is blocked in namespace team-alpha"


def test_an_empty_allowed_list_allows_no_tools() -> None:
    found, _ = codes(policy(tools={}), session(toolConstraints={"allowed": ["read"]}))
    assert found == ["ToolNotAllowed"]


def test_required_approval_cannot_be_opted_out_of() -> None:
    gated = policy(approval={"required": True, "approvers": ["leads"]})
    found, decision = codes(gated, session(approvalRequired=False))
    assert found == ["ApprovalRequired"]
    assert "spec.policy.approvalRequired: true" in decision.reason
    assert codes(gated, session(approvalRequired=True))[0] == []


def test_unknown_framework_type_and_version() -> None:
    assert codes(policy(), session(framework={"type": "nope"}))[0] == ["UnknownFramework"]
    odd_version = session(framework={"type": "script", "version": "9.9"})
    found, decision = codes(policy(), odd_version)
    assert found == ["UnknownFramework"]
    assert "no version '9.9'" in decision.reason


@pytest.mark.parametrize(
    ("storage", "expected"),
    [
        ({"type": "s3", "location": "bucket/team-alpha/run/"}, []),
        ({"type": "s3", "location": "s3://bucket/team-alpha/run/"}, []),
        ({"type": "s3", "location": "bucket/team-beta/run/"}, ["StorageOutsidePrefix"]),
        ({"type": "s3", "location": "bucket/team-alpha-evil/"}, ["StorageOutsidePrefix"]),
        ({"type": "s3", "location": "bucket/team-alpha/../team-beta/"}, ["StorageOutsidePrefix"]),
        ({"type": "pvc", "location": "claim"}, []),
        ({"type": "external", "location": "https://x"}, []),
    ],
)
def test_storage_stays_inside_the_namespace_prefix(
    storage: dict[str, str], expected: list[str]
) -> None:
    assert codes(policy(), session(storage=storage))[0] == expected


def test_storage_type_can_be_restricted() -> None:
    only_s3 = StoragePolicy(allowed_types=frozenset({StorageType.S3}))
    found, decision = codes(policy(), session(storage={"type": "pvc"}), storage=only_s3)
    assert found == ["StorageTypeNotAllowed"]
    assert "(allowed: s3)" in decision.reason


def test_every_violation_is_reported_together() -> None:
    bad = session(
        framework={"type": "nope"},
        modelConstraints={"allowed": ["gpt-9"], "budget": "5000.00"},
        toolConstraints={"allowed": ["exec"]},
        storage={"type": "s3", "location": "bucket/elsewhere/"},
    )
    gated = policy(approval={"required": True})
    found, decision = codes(gated, bad)
    assert found == [
        "UnknownFramework",
        "ModelNotAllowed",
        "BudgetExceeded",
        "ToolBlocked",
        "ApprovalRequired",
        "StorageOutsidePrefix",
    ]
    assert not decision.allowed
    assert decision.reason.count("; ") == len(found) - 1


def test_evaluate_is_pure() -> None:
    pol, sess = policy(), session(toolConstraints={"allowed": ["exec"]})
    before = (copy.deepcopy(pol.model_dump()), copy.deepcopy(sess.model_dump()))
    first = evaluate(pol, sess, USER, None, REGISTRY, now=NOW)
    second = evaluate(pol, sess, USER, None, REGISTRY, now=NOW)
    assert first == second
    assert (pol.model_dump(), sess.model_dump()) == before
