"""Pure lifecycle decisions: queue order, timeouts, retry classification, compliance."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from ambient.common.policy import Code
from ambient.crds.models import (
    HistoryEntry,
    LifecyclePolicy,
    NamespacePolicy,
    RetryPolicy,
    Session,
    SessionStatus,
)
from ambient.operator.sessions import lifecycle
from ambient.operator.sessions.observe import JobView, PodView, Termination
from ambient.runners.registry import Registry

NOW = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
MakeSession = Callable[..., Session]


def _status(*events: tuple[str, datetime], **fields: Any) -> SessionStatus:
    history = [
        HistoryEntry(seq=i, id=f"e{i}", timestamp=t.strftime("%Y-%m-%dT%H:%M:%SZ"), event=e)
        for i, (e, t) in enumerate(events)
    ]
    return SessionStatus(history=history, **fields)


def _job(**kw: Any) -> JobView:
    return JobView(**{"name": "s-a1", "owner_uid": "u", **kw})


def _pod(**kw: Any) -> PodView:
    return PodView(**{"name": "s-a1-x", "job_name": "s-a1", "phase": "Failed", **kw})


# --- the queue ----------------------------------------------------------------------------


def test_admit_is_first_in_first_out() -> None:
    keys = [(f"2026-03-01T12:00:0{i}Z", f"s{i}") for i in range(5)]
    assert lifecycle.admit(keys[0], keys, active=3, cap=5).admitted
    assert lifecycle.admit(keys[1], keys, active=3, cap=5).admitted
    third = lifecycle.admit(keys[2], keys, active=3, cap=5)
    assert (third.admitted, third.position, third.waiting) == (False, 1, 3)
    assert lifecycle.admit(keys[4], keys, active=3, cap=5).position == 3


def test_admit_breaks_timestamp_ties_by_name() -> None:
    keys = [("2026-03-01T12:00:00Z", "b"), ("2026-03-01T12:00:00Z", "a")]
    assert lifecycle.admit(keys[1], keys, active=0, cap=1).admitted
    assert not lifecycle.admit(keys[0], keys, active=0, cap=1).admitted


def test_admit_never_exceeds_the_cap() -> None:
    me = ("t", "x")
    assert not lifecycle.admit(me, [], active=5, cap=5).admitted
    assert not lifecycle.admit(me, [], active=7, cap=5).admitted  # cap lowered below active
    assert lifecycle.admit(me, [], active=4, cap=5).admitted


def test_heads_are_the_sessions_free_slots_admit() -> None:
    keys = [("t1", "c"), ("t0", "b"), ("t2", "a")]
    assert lifecycle.heads(keys, active=1, cap=3) == [("t0", "b"), ("t1", "c")]
    assert lifecycle.heads(keys, active=3, cap=3) == []


@pytest.mark.parametrize(
    ("body", "wants"),
    [
        ({"spec": {}, "status": {}}, True),
        ({"spec": {}, "status": {"phase": "Completed"}}, False),
        ({"spec": {"cancel": True}, "status": {}}, False),
        ({"spec": {}, "status": {"reason": "AwaitingApproval"}}, False),
        ({"spec": {"policy": {"approvalRequired": True}}, "status": {}}, False),
        (
            {
                "metadata": {"annotations": {"ambient.ai/approved-by": "alice"}},
                "spec": {"policy": {"approvalRequired": True}},
            },
            True,
        ),
        ({"spec": {}, "status": {"phase": "Pending", "reason": "Retrying"}}, True),
    ],
)
def test_wants_job(body: dict[str, Any], wants: bool) -> None:
    assert lifecycle.wants_job(body) is wants


# --- timeouts -----------------------------------------------------------------------------


def test_effective_timeout_order_and_bound(make_session: MakeSession) -> None:
    policy = LifecyclePolicy(default_timeout_seconds=600, max_timeout_seconds=900)
    assert lifecycle.effective_timeout(make_session(), LifecyclePolicy(), 3600) == 3600
    assert lifecycle.effective_timeout(make_session(), policy, 3600) == 600
    assert lifecycle.effective_timeout(make_session(timeout_seconds=300), policy, 3600) == 300
    assert lifecycle.effective_timeout(make_session(timeout_seconds=5000), policy, 3600) == 900


def test_timed_out_counts_from_the_first_job_with_a_grace() -> None:
    status = _status(("WorkloadCreated", NOW))
    grace = lifecycle.TIMEOUT_GRACE_SECONDS
    assert not lifecycle.timed_out(status, 60, NOW + timedelta(seconds=60 + grace - 1))
    assert lifecycle.timed_out(status, 60, NOW + timedelta(seconds=60 + grace))
    assert not lifecycle.timed_out(_status(), 60, NOW + timedelta(days=1))


def test_approval_expiry() -> None:
    status = _status(("AwaitingApproval", NOW), reason="AwaitingApproval")
    policy = LifecyclePolicy(approval_timeout_seconds=30)
    assert not lifecycle.approval_expired(status, policy, NOW + timedelta(seconds=29))
    assert lifecycle.approval_expired(status, policy, NOW + timedelta(seconds=30))
    assert not lifecycle.approval_expired(status, LifecyclePolicy(), NOW + timedelta(days=9))
    assert lifecycle.next_deadline(status, policy, 3600) == NOW + timedelta(seconds=30)


def test_next_deadline_for_running_and_finished() -> None:
    running = _status(("WorkloadCreated", NOW))
    grace = lifecycle.TIMEOUT_GRACE_SECONDS
    assert lifecycle.next_deadline(running, LifecyclePolicy(), 60) == NOW + timedelta(
        seconds=60 + grace
    )
    done = _status(("WorkloadCreated", NOW), phase="Completed")
    assert lifecycle.next_deadline(done, LifecyclePolicy(), 60) is None
    assert lifecycle.next_deadline(_status(), LifecyclePolicy(), 60) is None


# --- retries ------------------------------------------------------------------------------

RETRY = RetryPolicy(limit=2, retry_on_exit_codes=[75])


@pytest.mark.parametrize(
    ("job", "pod", "reason", "retryable"),
    [
        (_job(failed=True), _pod(reason="Evicted"), "Evicted", True),
        (_job(failed=True), _pod(reason="NodeLost"), "NodeLost", True),
        (
            _job(failed=True),
            _pod(termination=Termination(exit_code=137, reason="OOMKilled")),
            "OOMKilled",
            True,
        ),
        (_job(failed=True), _pod(termination=Termination(exit_code=1)), "Error", False),
        (_job(failed=True), _pod(termination=Termination(exit_code=75)), "Error", True),
        (_job(failed=True), None, "PodLost", True),
        (_job(failed=True, failure_reason="DeadlineExceeded"), _pod(), "TimedOut", False),
    ],
)
def test_attempt_failure(job: JobView, pod: PodView | None, reason: str, retryable: bool) -> None:
    found = lifecycle.attempt_failure(job, pod, RETRY, NOW)
    assert found is not None
    assert (found.reason, found.retryable) == (reason, retryable)


def test_stuck_image_pull_fails_the_attempt_after_the_grace() -> None:
    created = NOW.strftime("%Y-%m-%dT%H:%M:%SZ")
    pod = _pod(phase="Pending", waiting_reason="ImagePullBackOff", created=created)
    job = _job(active=1)
    assert lifecycle.attempt_failure(job, pod, RETRY, NOW + timedelta(seconds=299)) is None
    found = lifecycle.attempt_failure(job, pod, RETRY, NOW + timedelta(seconds=300))
    assert found is not None and found.retryable and found.reason == "ImagePullBackOff"


def test_running_or_succeeded_attempts_are_not_failures() -> None:
    assert lifecycle.attempt_failure(_job(active=1), _pod(phase="Running"), RETRY, NOW) is None
    assert lifecycle.attempt_failure(_job(complete=True), None, RETRY, NOW) is None


# --- policy changes -----------------------------------------------------------------------


def _policy(**spec: Any) -> NamespacePolicy:
    return NamespacePolicy.model_validate(
        {"metadata": {"name": "p", "namespace": "team-alpha", "generation": 3}, "spec": spec}
    )


ALLOWING = {"models": {"allowed": ["claude-3-sonnet"]}, "tools": {"allowed": ["Bash"]}}


def test_compliant_session_has_no_violations(make_session: MakeSession, registry: Registry) -> None:
    assert lifecycle.violations(_policy(**ALLOWING), make_session(), registry, "op", NOW) == ()


def test_removed_model_and_blocked_tool(make_session: MakeSession, registry: Registry) -> None:
    policy = _policy(
        models={"allowed": ["claude-3-haiku"]}, tools={"allowed": ["Bash"], "blocked": ["bash"]}
    )
    found = lifecycle.violations(policy, make_session(), registry, "op", NOW)
    assert [v.code for v in found] == [Code.MODEL_NOT_ALLOWED, Code.TOOL_BLOCKED]


def test_admission_only_rules_are_not_rejudged(
    make_session: MakeSession, registry: Registry
) -> None:
    # Approval now required, and the Session's budget above what is left: settled at
    # admission, so a running Session is not stopped for them.
    policy = _policy(
        **ALLOWING,
        approval={"required": True},
    )
    assert lifecycle.violations(policy, make_session(), registry, "op", NOW) == ()


def test_exhausted_budget_is_a_violation(make_session: MakeSession, registry: Registry) -> None:
    policy = NamespacePolicy.model_validate(
        {
            "metadata": {"name": "p", "namespace": "team-alpha"},
            "spec": {**ALLOWING, "models": {**ALLOWING["models"], "budget": {"monthly": "50"}}},
            "status": {"month": "2026-03", "monthToDateSpend": "50.01"},
        }
    )
    found = lifecycle.violations(policy, make_session(), registry, "op", NOW)
    assert [v.code for v in found] == [Code.BUDGET_EXCEEDED]
    assert "charged 50.01 USD" in found[0].message
    # Exactly the budget is what a Session reserving the rest of the month leaves: its
    # own reservation must not stop it.
    exact = policy.model_copy(
        update={"status": policy.status.model_copy(update={"month_to_date_spend": "50.00"})}
    )
    assert lifecycle.violations(exact, make_session(), registry, "op", NOW) == ()
    last_month = policy.model_copy(
        update={"status": policy.status.model_copy(update={"month": "2026-02"})}
    )
    assert lifecycle.violations(last_month, make_session(), registry, "op", NOW) == ()


def test_policy_signature_ignores_usage_that_leaves_budget() -> None:
    base = {
        "metadata": {"name": "p", "generation": 2},
        "spec": {"models": {"budget": {"monthly": "10"}}},
    }
    fresh = NamespacePolicy.model_validate(base)
    spent_some = NamespacePolicy.model_validate(
        {**base, "status": {"month": "2026-03", "monthToDateSpend": "4.00"}}
    )
    spent_all = NamespacePolicy.model_validate(
        {**base, "status": {"month": "2026-03", "monthToDateSpend": "10.01"}}
    )
    assert lifecycle.policy_signature(fresh, NOW) == lifecycle.policy_signature(spent_some, NOW)
    assert lifecycle.policy_signature(spent_all, NOW) == (2, True)
    assert lifecycle.policy_signature(None, NOW) is None
