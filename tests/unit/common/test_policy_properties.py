"""Properties of the policy decision, over generated policies and Sessions (hypothesis)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from ambient.common.policy import Code, UserInfo, evaluate
from ambient.crds.models import NamespacePolicy, Session
from ambient.runners.registry import Registry

NS = "team-alpha"
NOW = datetime(2026, 3, 10, tzinfo=UTC)
USER = UserInfo("alice")
MODELS = ["claude-3-opus", "claude-3-sonnet", "claude-3-haiku", "gpt-4o"]
TOOLS = ["Bash", "Read", "Edit", "Write", "WebFetch", "exec"]
REGISTRY = Registry.model_validate(
    {
        "frameworks": {
            "script": {
                "defaultVersion": "1.0",
                "versions": {"1.0": {"image": "runner-script:1", "command": ["run"]}},
            }
        }
    }
)

names = st.lists(st.sampled_from(MODELS), unique=True)
tools = st.lists(st.sampled_from(TOOLS), unique=True)
cents = st.integers(min_value=0, max_value=200_000)


def _money(c: int) -> str:
    return str(Decimal(c) / 100)


@st.composite
def policies(draw: st.DrawFn) -> dict[str, Any]:
    return {
        "models": draw(names),
        "budget": draw(st.none() | cents),
        "allowed_tools": draw(tools),
        "blocked_tools": draw(tools),
        "approval": draw(st.booleans()),
        "spent": draw(cents),
    }


@st.composite
def sessions(draw: st.DrawFn) -> dict[str, Any]:
    return {
        "models": draw(names),
        "budget": draw(st.none() | cents),
        "tools": draw(tools),
        "approval": draw(st.booleans()),
    }


def _policy(p: dict[str, Any]) -> NamespacePolicy:
    models: dict[str, Any] = {"allowed": p["models"]}
    if p["budget"] is not None:
        models["budget"] = {"monthly": _money(p["budget"]), "currency": "USD"}
    return NamespacePolicy.model_validate(
        {
            "metadata": {"name": "policy", "namespace": NS},
            "spec": {
                "models": models,
                "tools": {"allowed": p["allowed_tools"], "blocked": p["blocked_tools"]},
                "approval": {"required": p["approval"]},
            },
            "status": {"month": "2026-03", "monthToDateSpend": _money(p["spent"])},
        }
    )


def _session(s: dict[str, Any]) -> Session:
    constraints: dict[str, Any] = {"allowed": s["models"]}
    if s["budget"] is not None:
        constraints["budget"] = _money(s["budget"])
    return Session.model_validate(
        {
            "metadata": {"name": "s", "namespace": NS},
            "spec": {
                "trigger": {"source": "manual", "event": "test"},
                "framework": {"type": "script"},
                "policy": {
                    "modelConstraints": constraints,
                    "toolConstraints": {"allowed": s["tools"]},
                    "approvalRequired": s["approval"],
                },
            },
        }
    )


def _decide(p: dict[str, Any], s: dict[str, Any]) -> Any:
    return evaluate(_policy(p), _session(s), USER, None, REGISTRY, now=NOW)


@settings(max_examples=300, deadline=None)
@given(policies(), sessions())
def test_an_admitted_session_never_holds_a_blocked_tool(
    p: dict[str, Any], s: dict[str, Any]
) -> None:
    decision = _decide(p, s)
    blocked = {t.lower() for t in p["blocked_tools"]}
    if decision.allowed:
        assert not blocked.intersection(t.lower() for t in s["tools"])
    if blocked.intersection(t.lower() for t in s["tools"]):
        assert Code.TOOL_BLOCKED in decision.codes


@st.composite
def narrowed(draw: st.DrawFn) -> tuple[dict[str, Any], dict[str, Any]]:
    """A policy and a narrower one: fewer models and tools, more blocked, less budget,
    more spent, approval at least as strict."""
    wide = draw(policies())
    narrow = dict(wide)
    narrow["models"] = (
        draw(st.lists(st.sampled_from(wide["models"]), unique=True)) if wide["models"] else []
    )
    narrow["allowed_tools"] = (
        draw(st.lists(st.sampled_from(wide["allowed_tools"]), unique=True))
        if wide["allowed_tools"]
        else []
    )
    narrow["blocked_tools"] = sorted(set(wide["blocked_tools"]) | set(draw(tools)))
    if wide["budget"] is not None:
        narrow["budget"] = draw(st.integers(min_value=0, max_value=wide["budget"]))
    narrow["spent"] = draw(st.integers(min_value=wide["spent"], max_value=wide["spent"] + 50_000))
    narrow["approval"] = wide["approval"] or draw(st.booleans())
    return wide, narrow


@settings(max_examples=300, deadline=None)
@given(narrowed(), sessions())
def test_narrowing_a_policy_never_admits_what_it_refused(
    pair: tuple[dict[str, Any], dict[str, Any]], s: dict[str, Any]
) -> None:
    wide, narrow = pair
    if not _decide(wide, s).allowed:
        assert not _decide(narrow, s).allowed


@settings(max_examples=300, deadline=None)
@given(policies(), sessions(), st.randoms(use_true_random=False))
def test_the_order_of_list_fields_does_not_matter(
    p: dict[str, Any], s: dict[str, Any], rnd: Any
) -> None:
    shuffled_p = {k: rnd.sample(v, len(v)) if isinstance(v, list) else v for k, v in p.items()}
    shuffled_s = {k: rnd.sample(v, len(v)) if isinstance(v, list) else v for k, v in s.items()}
    first, second = _decide(p, s), _decide(shuffled_p, shuffled_s)
    assert first.allowed == second.allowed
    assert sorted(first.codes) == sorted(second.codes)
