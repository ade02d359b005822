"""evaluate(): every rule passing and failing, several at once, caller errors, and purity."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest

from ambient.common.policy import (
    Code,
    Decision,
    StoragePolicy,
    Usage,
    UserInfo,
    Violation,
    evaluate,
)
from ambient.crds.models import NamespacePolicy, Session, StorageType
from ambient.runners.registry import Registry

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
USER = UserInfo("alice", ("team-alpha-devs",), "u-1")
UNSET = object()
"""Marks a Session field that is left out of the manifest."""

# A registry of its own, so that edits to the shipped registry.yaml cannot change these tests.
REGISTRY = Registry.model_validate(
    {
        "frameworks": {
            "claude-code": {
                "defaultVersion": "1.0",
                "versions": {
                    "1.0": {"image": "runner-claude-code:1", "command": ["run"]},
                    "1.1": {"image": "runner-claude-code:1.1", "command": ["run"]},
                },
            },
            "script": {
                "defaultVersion": "1.0",
                "versions": {"1.0": {"image": "runner-script:1", "command": ["run"]}},
            },
        }
    }
)


def policy(namespace: str = "team-alpha", name: str = "policy", **spec: Any) -> NamespacePolicy:
    base: dict[str, Any] = {
        "models": {
            "allowed": ["claude-3-sonnet", "claude-3-haiku"],
            "budget": {"monthly": "1000.00", "currency": "USD"},
        },
        "tools": {"allowed": ["bash", "edit", "read", "write"], "blocked": ["exec"]},
    }
    status = spec.pop("status", {})
    base.update(spec)
    return NamespacePolicy.model_validate(
        {"metadata": {"name": name, "namespace": namespace}, "spec": base, "status": status}
    )


def session(
    *,
    namespace: str = "team-alpha",
    framework: dict[str, str] | None = None,
    models: list[str] | None = None,
    budget: object = "100.00",
    tools: list[str] | None = None,
    approval: bool = False,
    storage: dict[str, str] | None = None,
) -> Session:
    constraints: dict[str, Any] = {
        "allowed": ["claude-3-sonnet"] if models is None else models,
    }
    if budget is not UNSET:
        constraints["budget"] = budget
    return Session.model_validate(
        {
            "metadata": {"name": "s", "namespace": namespace},
            "spec": {
                "trigger": {"source": "manual", "event": "test"},
                "framework": framework or {"type": "claude-code"},
                "policy": {
                    "modelConstraints": constraints,
                    "toolConstraints": {"allowed": ["bash", "read"] if tools is None else tools},
                    "approvalRequired": approval,
                },
                "artifacts": {
                    "storage": storage or {"type": "s3", "location": "bucket/team-alpha/x/"}
                },
            },
        }
    )


def check(
    pol: NamespacePolicy | None,
    sess: Session,
    usage: Usage | None = None,
    **kw: Any,
) -> Decision:
    kw.setdefault("now", NOW)
    return evaluate(pol, sess, USER, usage, REGISTRY, **kw)


def codes(
    pol: NamespacePolicy | None, sess: Session, usage: Usage | None = None, **kw: Any
) -> list[str]:
    return list(check(pol, sess, usage, **kw).codes)


# --- the whole verdict ----------------------------------------------------------------------


def test_a_compliant_session_is_allowed() -> None:
    decision = check(policy(), session())
    assert decision == Decision(True, (), "policy")
    assert decision.reason == ""
    assert decision.codes == ()


def test_codes_are_stable() -> None:
    assert sorted(Code) == sorted(
        [
            "NoPolicy",
            "UnknownFramework",
            "ModelNotAllowed",
            "BudgetRequired",
            "BudgetExceeded",
            "ToolBlocked",
            "ToolNotAllowed",
            "ApprovalRequired",
            "StorageTypeNotAllowed",
            "StorageOutsidePrefix",
            "SelfApproved",
        ]
    )


def test_every_violation_is_reported_together_in_rule_order() -> None:
    bad = session(
        framework={"type": "nope"},
        models=["gpt-9", "claude-3-sonnet", "claude-3-opus"],
        budget="5000.00",
        tools=["exec", "bash", "curl"],
        storage={"type": "s3", "location": "bucket/elsewhere/"},
    )
    decision = check(policy(approval={"required": True}), bad)
    assert [(v.code, v.field) for v in decision.violations] == [
        ("UnknownFramework", "spec.framework.type"),
        ("ModelNotAllowed", "spec.policy.modelConstraints.allowed[0]"),
        ("ModelNotAllowed", "spec.policy.modelConstraints.allowed[2]"),
        ("BudgetExceeded", "spec.policy.modelConstraints.budget"),
        ("ToolBlocked", "spec.policy.toolConstraints.allowed[0]"),
        ("ToolNotAllowed", "spec.policy.toolConstraints.allowed[2]"),
        ("ApprovalRequired", "spec.policy.approvalRequired"),
        ("StorageOutsidePrefix", "spec.artifacts.storage.location"),
    ]
    assert not decision.allowed
    assert decision.policy_name == "policy"
    assert decision.reason == "; ".join(v.message for v in decision.violations)
    assert decision.reason.count("; ") == 7


def test_budget_required_is_reported_alongside_other_violations() -> None:
    bad = session(budget=UNSET, tools=["exec"], models=["gpt-9"])
    assert codes(policy(), bad) == ["ModelNotAllowed", "BudgetRequired", "ToolBlocked"]


@pytest.mark.parametrize(
    ("allowed", "violations"),
    [
        (True, (Violation(Code.TOOL_BLOCKED, "f", "m"),)),
        (False, ()),
    ],
)
def test_a_decision_is_allowed_exactly_when_it_has_no_violations(
    allowed: bool, violations: tuple[Violation, ...]
) -> None:
    with pytest.raises(ValueError, match="exactly when"):
        Decision(allowed, violations)


# --- default deny -----------------------------------------------------------------------------


def test_no_policy_denies_by_default_with_an_actionable_message() -> None:
    decision = check(None, session())
    assert decision.codes == ("NoPolicy",)
    assert not decision.allowed
    assert decision.policy_name is None
    assert decision.violations[0].field == "metadata.namespace"
    assert decision.reason == (
        "namespace team-alpha has no NamespacePolicy, so no Session may run there: "
        "ask a platform admin to create one"
    )


def test_no_policy_denies_even_a_session_that_breaks_nothing_else() -> None:
    # Only NoPolicy: without a policy there is nothing to check the rest against.
    assert codes(None, session(framework={"type": "nope"}, tools=["exec"])) == ["NoPolicy"]


def test_a_default_policy_applies_when_the_namespace_has_none() -> None:
    default = policy(namespace="", name="cluster-default")
    decision = check(None, session(), default_policy=default)
    assert decision == Decision(True, (), "cluster-default")


def test_a_default_policy_can_refuse_too() -> None:
    default = policy(namespace="", name="cluster-default", models={"allowed": []})
    decision = check(None, session(), default_policy=default)
    assert decision.codes == ("ModelNotAllowed",)
    assert decision.policy_name == "cluster-default"
    assert "(allowed: none)" in decision.reason


def test_the_namespace_policy_wins_over_the_default() -> None:
    strict = policy(models={"allowed": ["claude-3-haiku"]})
    decision = check(strict, session(), default_policy=policy(namespace="", name="default"))
    assert decision.codes == ("ModelNotAllowed",)
    assert decision.policy_name == "policy"


# --- framework --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("framework", "field", "message"),
    [
        ({"type": "claude-code"}, None, None),
        ({"type": "claude-code", "version": "latest"}, None, None),
        ({"type": "claude-code", "version": "1.1"}, None, None),
        ({"type": "script", "version": "1.0"}, None, None),
        (
            {"type": "nope"},
            "spec.framework.type",
            "framework type 'nope' is not in the runner registry (known: claude-code, script)",
        ),
        (
            {"type": "script", "version": "9.9"},
            "spec.framework.version",
            "framework 'script' has no version '9.9' in the runner registry (known: 1.0)",
        ),
    ],
)
def test_framework_type_and_version_are_in_the_registry(
    framework: dict[str, str], field: str | None, message: str | None
) -> None:
    decision = check(policy(), session(framework=framework))
    if field is None:
        assert decision.allowed
    else:
        assert decision.violations == (Violation(Code.UNKNOWN_FRAMEWORK, field, message or ""),)


# --- models -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("models", "bad_indexes"),
    [
        ([], []),  # a Session that lists no models asks for none
        (["claude-3-sonnet"], []),
        (["claude-3-sonnet", "claude-3-haiku"], []),
        (["claude-3-opus"], [0]),
        (["claude-3-sonnet", "claude-3-opus", "gpt-4"], [1, 2]),
        (["Claude-3-Sonnet"], [0]),  # model ids are exact
        (["claude-3-sonnet", "claude-3-sonnet"], []),
    ],
)
def test_every_model_must_be_allowed(models: list[str], bad_indexes: list[int]) -> None:
    decision = check(policy(), session(models=models))
    assert [v.field for v in decision.violations] == [
        f"spec.policy.modelConstraints.allowed[{i}]" for i in bad_indexes
    ]
    assert set(decision.codes) <= {Code.MODEL_NOT_ALLOWED}


def test_model_not_allowed_names_the_model_namespace_and_allowed_list() -> None:
    decision = check(policy(), session(models=["claude-3-sonnet", "claude-3-opus"]))
    assert decision.violations == (
        Violation(
            Code.MODEL_NOT_ALLOWED,
            "spec.policy.modelConstraints.allowed[1]",
            "model claude-3-opus is not allowed in namespace team-alpha "
            "(allowed: claude-3-sonnet, claude-3-haiku)",
        ),
    )


def test_a_policy_without_models_allows_none() -> None:
    decision = check(policy(models={}), session(budget=UNSET))
    assert decision.reason == (
        "model claude-3-sonnet is not allowed in namespace team-alpha (allowed: none)"
    )
    assert codes(policy(models={}), session(models=[], budget=UNSET)) == []


# --- budget -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("asked", "usage", "expected"),
    [
        pytest.param("100.00", None, [], id="no-usage-yet"),
        pytest.param("1000.00", None, [], id="the-whole-month"),
        pytest.param("1000.01", None, ["BudgetExceeded"], id="more-than-the-month"),
        pytest.param("100.00", Usage("2026-11", Decimal(0)), [], id="nothing-spent"),
        pytest.param("40.00", Usage("2026-11", Decimal("960.00")), [], id="exactly-what-is-left"),
        pytest.param(
            "40.01", Usage("2026-11", Decimal("960.00")), ["BudgetExceeded"], id="one-cent-over"
        ),
        pytest.param(
            "40.00", Usage("2026-11", Decimal("960.001")), ["BudgetExceeded"], id="sub-cent-spend"
        ),
        pytest.param("1000.00", Usage("2026-10", Decimal("999.99")), [], id="last-month-ignored"),
        pytest.param("1000.00", Usage("2026-12", Decimal("999.99")), [], id="next-month-ignored"),
        pytest.param("1000.00", Usage("2025-11", Decimal("999.99")), [], id="last-year-ignored"),
        pytest.param("0", Usage("2026-11", Decimal("1000.00")), [], id="zero-fits-nothing-left"),
        pytest.param(
            "0.01", Usage("2026-11", Decimal("1000.00")), ["BudgetExceeded"], id="all-spent"
        ),
        pytest.param(
            "1.00", Usage("2026-11", Decimal("1200.00")), ["BudgetExceeded"], id="overspent"
        ),
        pytest.param("5", Usage("2026-11", Decimal("995")), [], id="whole-units"),
    ],
)
def test_budget_fits_what_is_left_this_month(
    asked: str, usage: Usage | None, expected: list[str]
) -> None:
    assert codes(policy(), session(models=[], budget=asked), usage) == expected


def test_budget_message_shows_money_with_currency() -> None:
    decision = check(policy(), session(budget="100.00"), Usage("2026-11", Decimal("960.00")))
    assert decision.violations == (
        Violation(
            Code.BUDGET_EXCEEDED,
            "spec.policy.modelConstraints.budget",
            "budget 100.00 USD exceeds the 40.00 USD left this month in namespace team-alpha "
            "(monthly 1000.00 USD, spent 960.00 USD)",
        ),
    )


@pytest.mark.parametrize(
    ("monthly", "asked", "spent", "message"),
    [
        (
            "500",
            "100",
            "450",
            "budget 100.00 EUR exceeds the 50.00 EUR left this month in namespace team-alpha "
            "(monthly 500.00 EUR, spent 450.00 EUR)",
        ),
        (  # left is rounded down and spent up, so the figures agree with the refusal
            "1000.00",
            "40.00",
            "960.001",
            "budget 40.00 EUR exceeds the 39.99 EUR left this month in namespace team-alpha "
            "(monthly 1000.00 EUR, spent 960.01 EUR)",
        ),
        (  # overspent: nothing is left, never a negative amount
            "1000.00",
            "1.00",
            "1200.50",
            "budget 1.00 EUR exceeds the 0.00 EUR left this month in namespace team-alpha "
            "(monthly 1000.00 EUR, spent 1200.50 EUR)",
        ),
    ],
)
def test_budget_messages_are_in_cents_of_the_policy_currency(
    monthly: str, asked: str, spent: str, message: str
) -> None:
    pol = policy(models={"budget": {"monthly": monthly, "currency": "EUR"}})
    decision = check(pol, session(models=[], budget=asked), Usage("2026-11", Decimal(spent)))
    assert decision.reason == message


def test_spend_far_below_a_cent_still_counts() -> None:
    usage = Usage("2026-11", Decimal("960.0000000000000000000000000000000000000001"))
    assert codes(policy(), session(budget="40.00"), usage) == ["BudgetExceeded"]
    assert codes(policy(), session(budget="39.99"), usage) == []


def test_the_month_is_the_utc_month_of_now() -> None:
    usage = Usage("2026-11", Decimal("1000.00"))
    # 00:30 on 1 December in UTC+01:00 is still 30 November in UTC: the spend counts.
    east = datetime(2026, 12, 1, 0, 30, tzinfo=timezone(timedelta(hours=1)))
    assert codes(policy(), session(budget="1.00"), usage, now=east) == ["BudgetExceeded"]
    # 00:30 UTC on 1 December: a new month, November's spend no longer counts.
    december = datetime(2026, 12, 1, 0, 30, tzinfo=UTC)
    assert codes(policy(), session(budget="1.00"), usage, now=december) == []


def test_usage_comes_from_the_policy_status_when_not_given() -> None:
    spent = policy(status={"month": "2026-11", "monthToDateSpend": "960.00"})
    assert codes(spent, session(budget="40.01")) == ["BudgetExceeded"]
    assert codes(spent, session(budget="40.00")) == []
    stale = policy(status={"month": "2026-10", "monthToDateSpend": "960.00"})
    assert codes(stale, session(budget="1000.00")) == []


def test_given_usage_wins_over_the_policy_status() -> None:
    spent = policy(status={"month": "2026-11", "monthToDateSpend": "960.00"})
    assert codes(spent, session(budget="500.00"), Usage("2026-11", Decimal(0))) == []


def test_a_session_without_a_budget_is_refused_when_the_namespace_has_one() -> None:
    decision = check(policy(), session(budget=UNSET))
    assert decision.violations == (
        Violation(
            Code.BUDGET_REQUIRED,
            "spec.policy.modelConstraints.budget",
            "namespace team-alpha has a monthly budget of 1000.00 USD: "
            "set spec.policy.modelConstraints.budget to bound this Session",
        ),
    )


@pytest.mark.parametrize("asked", [UNSET, "0", "999999999999.99"])
def test_no_namespace_budget_means_no_limit(asked: object) -> None:
    unbounded = policy(models={"allowed": ["claude-3-sonnet"]})
    usage = Usage("2026-11", Decimal("123456789.00"))
    assert codes(unbounded, session(budget=asked), usage) == []


# --- tools ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tools", "expected"),
    [
        ([], []),
        (["bash"], []),
        (["bash", "edit", "read", "write"], []),
        (["Bash", "READ"], []),  # names compare case-insensitively
        (["exec"], ["ToolBlocked"]),
        (["Exec"], ["ToolBlocked"]),  # a block cannot be dodged by spelling
        (["write", "curl"], ["ToolNotAllowed"]),
        (["bash", "exec", "curl"], ["ToolBlocked", "ToolNotAllowed"]),
        (["exec", "exec"], ["ToolBlocked", "ToolBlocked"]),
    ],
)
def test_tools_are_a_subset_of_allowed_and_none_blocked(
    tools: list[str], expected: list[str]
) -> None:
    assert codes(policy(), session(tools=tools)) == expected


def test_tool_violations_point_at_the_tool() -> None:
    decision = check(policy(), session(tools=["read", "curl", "exec"]))
    assert decision.violations == (
        Violation(
            Code.TOOL_NOT_ALLOWED,
            "spec.policy.toolConstraints.allowed[1]",
            "tool curl is not allowed in namespace team-alpha (allowed: bash, edit, read, write)",
        ),
        Violation(
            Code.TOOL_BLOCKED,
            "spec.policy.toolConstraints.allowed[2]",
            "tool exec is blocked in namespace team-alpha",
        ),
    )


@pytest.mark.parametrize(
    "tools_policy",
    [
        {"allowed": ["bash", "exec"], "blocked": ["exec"]},
        {"allowed": ["bash", "exec"], "blocked": ["EXEC"]},
        {"allowed": [], "blocked": ["exec"]},
    ],
)
def test_blocked_wins_over_allowed(tools_policy: dict[str, list[str]]) -> None:
    decision = check(policy(tools=tools_policy), session(tools=["exec"]))
    assert decision.codes == ("ToolBlocked",)  # one violation per tool, blocked first


def test_an_empty_allowed_list_allows_no_tools() -> None:
    decision = check(policy(tools={}), session(tools=["read"]))
    assert decision.reason == "tool read is not allowed in namespace team-alpha (allowed: none)"
    assert codes(policy(tools={}), session(tools=[])) == []


# --- approval ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("required", "session_opts_in", "expected"),
    [
        (False, False, []),
        (False, True, []),  # a Session may ask for approval on its own
        (True, True, []),
        (True, False, ["ApprovalRequired"]),
    ],
)
def test_required_approval_cannot_be_opted_out_of(
    required: bool, session_opts_in: bool, expected: list[str]
) -> None:
    gated = policy(approval={"required": required, "approvers": ["team-alpha-leads"]})
    assert codes(gated, session(approval=session_opts_in)) == expected


def test_approval_message_says_what_to_set() -> None:
    decision = check(policy(approval={"required": True}), session())
    assert decision.violations == (
        Violation(
            Code.APPROVAL_REQUIRED,
            "spec.policy.approvalRequired",
            "namespace team-alpha requires approval for every Session: "
            "set spec.policy.approvalRequired: true",
        ),
    )


# --- storage ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("storage", "expected"),
    [
        ({"type": "s3", "location": "bucket/team-alpha/run/"}, []),
        ({"type": "s3", "location": "bucket/team-alpha/"}, []),
        ({"type": "s3", "location": "bucket/team-alpha"}, []),
        ({"type": "s3", "location": "s3://bucket/team-alpha/run/"}, []),
        ({"type": "s3", "location": "any-bucket/team-alpha/a/b/c.json"}, []),
        ({"type": "s3"}, []),  # no location: the operator chooses one inside the prefix
        ({"type": "s3", "location": "bucket/team-beta/run/"}, ["StorageOutsidePrefix"]),
        ({"type": "s3", "location": "bucket/team-alpha-evil/"}, ["StorageOutsidePrefix"]),
        ({"type": "s3", "location": "bucket/x/team-alpha/"}, ["StorageOutsidePrefix"]),
        ({"type": "s3", "location": "bucket/"}, ["StorageOutsidePrefix"]),
        ({"type": "s3", "location": "bucket"}, ["StorageOutsidePrefix"]),
        ({"type": "s3", "location": "team-alpha/"}, ["StorageOutsidePrefix"]),  # no bucket
        ({"type": "s3", "location": "/team-alpha/x"}, ["StorageOutsidePrefix"]),
        ({"type": "s3", "location": "bucket//team-alpha/"}, ["StorageOutsidePrefix"]),
        ({"type": "s3", "location": "bucket/team-alpha/../team-beta/"}, ["StorageOutsidePrefix"]),
        ({"type": "s3", "location": "bucket/team-alpha/.."}, ["StorageOutsidePrefix"]),
        ({"type": "s3", "location": "bucket/Team-Alpha/"}, ["StorageOutsidePrefix"]),
        ({"type": "pvc", "location": "ambient-artifacts"}, []),
        ({"type": "pvc", "location": "ambient-artifacts-big"}, []),
        ({"type": "pvc", "location": "claim"}, ["StorageOutsidePrefix"]),
        ({"type": "pvc", "location": "postgres-data"}, ["StorageOutsidePrefix"]),
        ({"type": "pvc", "location": "ambient-artifactsx"}, ["StorageOutsidePrefix"]),
        ({"type": "external", "location": "https://example.com/anything"}, []),
    ],
)
def test_storage_stays_inside_the_namespace_prefix(
    storage: dict[str, str], expected: list[str]
) -> None:
    assert codes(policy(), session(storage=storage)) == expected


def test_storage_message_shows_the_expected_prefix() -> None:
    decision = check(policy(), session(storage={"type": "s3", "location": "b/team-beta/"}))
    assert decision.violations == (
        Violation(
            Code.STORAGE_OUTSIDE_PREFIX,
            "spec.artifacts.storage.location",
            "s3 location b/team-beta/ is outside namespace team-alpha's storage: "
            "use <bucket>/team-alpha/...",
        ),
    )


@pytest.mark.parametrize(
    ("allowed", "storage", "expected"),
    [
        ({StorageType.S3}, {"type": "s3", "location": "b/team-alpha/"}, []),
        ({StorageType.S3}, {"type": "pvc", "location": "c"}, ["StorageTypeNotAllowed"]),
        ({StorageType.S3}, {"type": "external", "location": "x"}, ["StorageTypeNotAllowed"]),
        ({StorageType.PVC}, {"type": "s3", "location": "b/x/"}, ["StorageTypeNotAllowed"]),
        (set(), {"type": "pvc", "location": "c"}, ["StorageTypeNotAllowed"]),
    ],
)
def test_storage_type_can_be_restricted(
    allowed: set[StorageType], storage: dict[str, str], expected: list[str]
) -> None:
    restricted = StoragePolicy(allowed_types=frozenset(allowed))
    # A type that is not allowed is reported once; its location is not checked too.
    assert codes(policy(), session(storage=storage), storage=restricted) == expected


def test_storage_type_message_lists_the_allowed_types() -> None:
    restricted = StoragePolicy(allowed_types=frozenset({StorageType.S3, StorageType.PVC}))
    decision = check(policy(), session(storage={"type": "external"}), storage=restricted)
    assert decision.violations == (
        Violation(
            Code.STORAGE_TYPE_NOT_ALLOWED,
            "spec.artifacts.storage.type",
            "storage type external is not allowed in namespace team-alpha (allowed: pvc, s3)",
        ),
    )


@pytest.mark.parametrize(
    ("location", "expected"),
    [
        ("artifacts/tenants/team-alpha/run/", []),
        ("s3://artifacts/tenants/team-alpha/", []),
        ("other/tenants/team-alpha/run/", ["StorageOutsidePrefix"]),
        ("artifacts/team-alpha/run/", ["StorageOutsidePrefix"]),
    ],
)
def test_a_storage_policy_can_fix_the_bucket_and_prefix(location: str, expected: list[str]) -> None:
    fixed = StoragePolicy(bucket="artifacts", prefix_template="tenants/{namespace}/")
    decision = check(policy(), session(storage={"type": "s3", "location": location}), storage=fixed)
    assert list(decision.codes) == expected
    if expected:
        assert decision.reason.endswith("use artifacts/tenants/team-alpha/...")


@pytest.mark.parametrize(
    "template",
    ["{namespace}", "/{namespace}/", "{other}/", "{0}/", "{namespace!z}/", "../{namespace}/"],
)
def test_a_storage_prefix_template_must_be_safe(template: str) -> None:
    with pytest.raises(ValueError, match="storage prefix template"):
        StoragePolicy(prefix_template=template)


def test_the_default_storage_policy_is_the_documented_convention() -> None:
    default = StoragePolicy()
    assert default.allowed_types == {StorageType.S3, StorageType.PVC, StorageType.EXTERNAL}
    assert default.bucket is None
    assert default.prefix("team-alpha") == "team-alpha/"


# --- inputs -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("month", "spend"),
    [
        ("2026-13", Decimal(0)),
        ("2026-00", Decimal(0)),
        ("2026-1", Decimal(0)),
        ("2026-11-01", Decimal(0)),
        ("", Decimal(0)),
        ("2026-11", Decimal("-0.01")),
        ("2026-11", Decimal("NaN")),
        ("2026-11", Decimal("Infinity")),
        ("2026-11", 1.5),
    ],
)
def test_usage_refuses_nonsense(month: str, spend: Any) -> None:
    with pytest.raises(ValueError, match=r"usage month|month-to-date spend"):
        Usage(month, spend)


def test_usage_of_a_policy_reads_its_status() -> None:
    assert Usage.of(policy()) is None
    rolled_up = policy(status={"month": "2026-11", "monthToDateSpend": "12.34"})
    assert Usage.of(rolled_up) == Usage("2026-11", Decimal("12.34"))


@pytest.mark.parametrize(
    ("pol", "sess", "now", "match"),
    [
        (policy(), session(), datetime(2026, 11, 22, 12, 0), "timezone-aware"),
        (policy(), session(namespace=""), NOW, "no metadata.namespace"),
        (policy(namespace="team-beta"), session(), NOW, "cannot decide"),
    ],
)
def test_caller_mistakes_raise_so_the_webhook_fails_closed(
    pol: NamespacePolicy, sess: Session, now: datetime, match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        check(pol, sess, now=now)


def test_a_policy_without_a_namespace_is_accepted() -> None:
    assert check(policy(namespace=""), session()).allowed


@pytest.mark.parametrize(
    "user", [USER, UserInfo("system:serviceaccount:ambient:ingress"), UserInfo("")]
)
def test_no_rule_depends_on_the_requester_yet(user: UserInfo) -> None:
    bad = session(tools=["exec"])
    decision = evaluate(policy(), bad, user, None, REGISTRY, now=NOW)
    assert decision == check(policy(), bad)


# --- purity -----------------------------------------------------------------------------------


def test_evaluate_is_pure() -> None:
    pol = policy(
        approval={"required": True},
        status={"month": "2026-11", "monthToDateSpend": "990.00"},
    )
    default = policy(namespace="", name="default")
    sess = session(tools=["exec", "curl"], models=["gpt-9"], storage={"type": "pvc"})
    usage = Usage("2026-11", Decimal("960.00"))
    storage = StoragePolicy(allowed_types=frozenset({StorageType.S3}))
    inputs = (pol, default, sess, REGISTRY)
    before = [copy.deepcopy(m.model_dump()) for m in inputs]

    def run() -> Decision:
        return evaluate(
            pol, sess, USER, usage, REGISTRY, now=NOW, default_policy=default, storage=storage
        )

    first, second = run(), run()
    assert first == second
    assert hash(first) == hash(second)  # immutable all the way down
    assert len(first.violations) == 6
    assert [m.model_dump() for m in inputs] == before
    assert usage == Usage("2026-11", Decimal("960.00"))
    assert storage == StoragePolicy(allowed_types=frozenset({StorageType.S3}))


def test_a_session_approved_by_its_creator_is_refused() -> None:
    mine = session(approval=True)
    mine.metadata.annotations.update(
        {"ambient.ai/created-by-user": "lee", "ambient.ai/approved-by": "lee"}
    )
    assert codes(policy(), mine) == ["SelfApproved"]
    theirs = session(approval=True)
    theirs.metadata.annotations.update(
        {"ambient.ai/created-by-user": "lee", "ambient.ai/approved-by": "kim"}
    )
    assert codes(policy(), theirs) == []
