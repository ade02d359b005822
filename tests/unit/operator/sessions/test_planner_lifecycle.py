"""The planner with lifecycle context: cancel, queue, timeouts, retries, policy changes."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from ambient.common.policy import Code, Violation
from ambient.crds import naming
from ambient.crds.models import LifecyclePolicy, Phase, RetryPolicy, Session, SessionStatus
from ambient.operator.sessions import lifecycle
from ambient.operator.sessions.observe import JobView, PodView, Termination
from ambient.operator.sessions.planner import Observed, plan
from ambient.operator.settings import OperatorSettings
from ambient.runners.registry import ResolvedRunner

MakeSession = Callable[..., Session]
Advance = Callable[[Session, SessionStatus | None], Session]
UID = "5b1c2f4e-0000-4000-8000-000000000001"
A1 = naming.job_name("review-pr-42", 1)
A2 = naming.job_name("review-pr-42", 2)


def _job(name: str = A1, **kw: Any) -> JobView:
    return JobView(**{"name": name, "owner_uid": UID, **kw})


def _events(status: SessionStatus | None) -> list[str]:
    assert status is not None
    return [e.event for e in status.history]


def _started(
    make_session: MakeSession,
    runner: ResolvedRunner,
    settings: OperatorSettings,
    now: datetime,
    with_status: Advance,
    **kw: Any,
) -> Session:
    session = make_session(**kw)
    return with_status(session, plan(session, Observed(), runner, settings, now).status)


def test_cancel_running_deletes_the_job_and_names_who(
    make_session: MakeSession,
    runner: ResolvedRunner,
    settings: OperatorSettings,
    now: datetime,
    with_status: Advance,
) -> None:
    started = _started(make_session, runner, settings, now, with_status)
    cancelled = started.model_copy(deep=True)
    cancelled.spec.cancel = True
    cancelled.metadata.annotations[naming.ANNOTATION_CANCELLED_BY] = "alice"
    result = plan(cancelled, Observed(job=_job(active=1)), runner, settings, now)
    assert result.status is not None
    assert (result.status.phase, result.status.reason) == (Phase.FAILED, "Cancelled")
    entry = result.status.history[-1]
    assert (entry.event, entry.data["cancelledBy"], entry.data["jobName"]) == (
        "Cancelled",
        "alice",
        A1,
    )
    assert result.delete == [A1]
    # Once Failed, a later reconcile still removes a Job left behind, and writes nothing.
    after = with_status(cancelled, result.status)
    again = plan(after, Observed(job=_job(active=1)), runner, settings, now)
    assert again.status is None and again.delete == [A1]
    assert plan(after, Observed(job=_job(failed=True)), runner, settings, now).delete == []


def test_cancel_never_deletes_a_job_it_does_not_own(
    make_session: MakeSession, runner: ResolvedRunner, settings: OperatorSettings, now: datetime
) -> None:
    session = make_session()
    session.spec.cancel = True
    foreign = JobView(name=A1, owner_uid="someone-else", active=1)
    assert plan(session, Observed(job=foreign), runner, settings, now).delete == []


def test_not_admitted_queues_without_a_job(
    make_session: MakeSession,
    runner: ResolvedRunner,
    settings: OperatorSettings,
    now: datetime,
    with_status: Advance,
) -> None:
    session = make_session()
    ctx = lifecycle.Context(admitted=False, queue_position=3, queue_length=7, cap=50)
    result = plan(session, Observed(), runner, settings, now, context=ctx)
    assert result.create == []
    assert result.status is not None
    assert (result.status.phase, result.status.reason) == (Phase.PENDING, "Queued")
    cond = next(c for c in result.status.conditions if c.type == "Queued")
    assert cond.status == "True" and "position 3 of 7" in cond.message
    admitted = plan(with_status(session, result.status), Observed(), runner, settings, now)
    assert [m["kind"] for m in admitted.create] == ["Job"]
    assert admitted.status is not None
    cond = next(c for c in admitted.status.conditions if c.type == "Queued")
    assert (cond.status, cond.reason) == ("False", "Admitted")
    assert _events(admitted.status).count("Queued") == 1


def test_policy_timeout_bounds_the_job_and_ends_the_session(
    make_session: MakeSession,
    runner: ResolvedRunner,
    settings: OperatorSettings,
    now: datetime,
    with_status: Advance,
) -> None:
    ctx = lifecycle.Context(lifecycle=LifecyclePolicy(max_timeout_seconds=60), has_policy=True)
    session = make_session(timeout_seconds=600)
    first = plan(session, Observed(), runner, settings, now, context=ctx)
    assert first.create[0]["spec"]["activeDeadlineSeconds"] == 60
    started = with_status(session, first.status)
    late = now + timedelta(seconds=60 + lifecycle.TIMEOUT_GRACE_SECONDS)
    result = plan(started, Observed(job=_job(active=1)), runner, settings, late, context=ctx)
    assert result.status is not None
    assert (result.status.phase, result.status.reason) == (Phase.FAILED, "TimedOut")
    assert result.delete == [A1]


def test_approval_expires(
    make_session: MakeSession,
    runner: ResolvedRunner,
    settings: OperatorSettings,
    now: datetime,
    with_status: Advance,
) -> None:
    ctx = lifecycle.Context(lifecycle=LifecyclePolicy(approval_timeout_seconds=60))
    session = make_session(approval_required=True)
    waiting = with_status(session, plan(session, Observed(), runner, settings, now).status)
    soon = plan(waiting, Observed(), runner, settings, now + timedelta(seconds=59), context=ctx)
    assert soon.status is None
    late = plan(waiting, Observed(), runner, settings, now + timedelta(seconds=60), context=ctx)
    assert late.status is not None
    assert (late.status.phase, late.status.reason) == (Phase.FAILED, "ApprovalExpired")
    assert late.create == []


def _oom(name: str = A1) -> tuple[JobView, PodView]:
    pod = PodView(
        name=f"{name}-x",
        job_name=name,
        phase="Failed",
        termination=Termination(exit_code=137, reason="OOMKilled"),
    )
    return _job(name, failed=True), pod


def test_oom_retries_as_a_new_attempt_up_to_the_limit(
    make_session: MakeSession,
    runner: ResolvedRunner,
    settings: OperatorSettings,
    now: datetime,
    with_status: Advance,
) -> None:
    ctx = lifecycle.Context(lifecycle=LifecyclePolicy(retries=RetryPolicy(limit=1)))
    started = _started(make_session, runner, settings, now, with_status)
    job, pod = _oom()
    retry = plan(started, Observed(job=job, pod=pod), runner, settings, now, context=ctx)
    assert retry.status is not None
    assert (retry.status.phase, retry.status.reason, retry.status.attempt) == (
        Phase.PENDING,
        "Retrying",
        2,
    )
    entry = retry.status.history[-1]
    assert entry.event == "AttemptFailed"
    assert entry.data["correlationId"] == f"{UID}/a1"
    assert retry.status.workload.job_name is None

    second = with_status(started, retry.status)
    created = plan(second, Observed(others=(job,)), runner, settings, now, context=ctx)
    assert [m["metadata"]["name"] for m in created.create] == [A2]
    assert created.create[0]["metadata"]["labels"][naming.LABEL_ATTEMPT] == "2"
    assert created.delete == []  # a1 already failed

    running = with_status(second, created.status)
    job2, pod2 = _oom(A2)
    final = plan(
        running, Observed(job=job2, pod=pod2, others=(job,)), runner, settings, now, context=ctx
    )
    assert final.status is not None
    assert (final.status.phase, final.status.reason) == (Phase.FAILED, "OOMKilled")
    assert final.status.attempt == 2


def test_runner_exit_is_final_without_configuration(
    make_session: MakeSession,
    runner: ResolvedRunner,
    settings: OperatorSettings,
    now: datetime,
    with_status: Advance,
) -> None:
    ctx = lifecycle.Context(lifecycle=LifecyclePolicy(retries=RetryPolicy(limit=3)))
    started = _started(make_session, runner, settings, now, with_status)
    pod = PodView(name="p", job_name=A1, phase="Failed", termination=Termination(exit_code=1))
    result = plan(
        started, Observed(job=_job(failed=True), pod=pod), runner, settings, now, context=ctx
    )
    assert result.status is not None
    assert (result.status.phase, result.status.reason) == (Phase.FAILED, "Error")
    assert "AttemptFailed" not in _events(result.status)


def test_stuck_pull_retry_deletes_the_stuck_job(
    make_session: MakeSession,
    runner: ResolvedRunner,
    settings: OperatorSettings,
    now: datetime,
    with_status: Advance,
) -> None:
    ctx = lifecycle.Context(lifecycle=LifecyclePolicy(retries=RetryPolicy(limit=1)))
    started = _started(make_session, runner, settings, now, with_status)
    pod = PodView(
        name="p",
        job_name=A1,
        phase="Pending",
        waiting_reason="ImagePullBackOff",
        created=now.strftime("%Y-%m-%dT%H:%M:%SZ"),
    )
    late = now + timedelta(seconds=301)
    result = plan(
        started, Observed(job=_job(active=1), pod=pod), runner, settings, late, context=ctx
    )
    assert result.status is not None and result.status.attempt == 2
    assert result.delete == [A1]


VIOLATION = Violation(Code.MODEL_NOT_ALLOWED, "spec.policy.modelConstraints.allowed[0]", "gone")


def test_policy_violation_flag_keeps_running_and_stop_ends_it(
    make_session: MakeSession,
    runner: ResolvedRunner,
    settings: OperatorSettings,
    now: datetime,
    with_status: Advance,
) -> None:
    started = _started(make_session, runner, settings, now, with_status)
    observed = Observed(job=_job(active=1))
    flag = lifecycle.Context(
        lifecycle=LifecyclePolicy(on_violation="flag"),
        violations=(VIOLATION,),
        policy_generation=4,
        has_policy=True,
    )
    flagged = plan(started, observed, runner, settings, now, context=flag)
    assert flagged.status is not None
    assert flagged.status.phase != Phase.FAILED
    cond = next(c for c in flagged.status.conditions if c.type == "PolicyCompliant")
    assert cond.status == "False"
    assert flagged.status.history[-1].id == "policy-flagged/g4"
    assert flagged.delete == []
    again = plan(
        with_status(started, flagged.status), observed, runner, settings, now, context=flag
    )
    assert again.status is None  # flagged once per policy generation

    stop = lifecycle.Context(violations=(VIOLATION,), policy_generation=5, has_policy=True)
    stopped = plan(started, observed, runner, settings, now, context=stop)
    assert stopped.status is not None
    assert (stopped.status.phase, stopped.status.reason) == (Phase.FAILED, "PolicyViolation")
    assert stopped.status.history[-1].data["codes"] == "ModelNotAllowed"
    assert stopped.delete == [A1]


def test_a_job_created_by_an_earlier_pass_is_recorded_with_its_attempt(
    make_session: MakeSession, runner: ResolvedRunner, settings: OperatorSettings, now: datetime
) -> None:
    # A burst creates every Job before any status is written: the next pass finds the Job
    # and must still record the attempt and the creation.
    session = make_session()
    assert session.status.attempt is None
    result = plan(session, Observed(job=_job(active=1)), runner, settings, now)
    assert result.status is not None and not result.create
    assert result.status.attempt == 1
    assert "WorkloadCreated" in _events(result.status)


def test_a_queued_session_whose_job_an_earlier_pass_created_is_recorded_as_admitted(
    make_session: MakeSession,
    runner: ResolvedRunner,
    settings: OperatorSettings,
    now: datetime,
    with_status: Advance,
) -> None:
    # Admitted from the queue by a pass that only created the Job: the pass that records
    # it must still say the Session left the queue.
    session = make_session()
    ctx = lifecycle.Context(admitted=False, queue_position=1, queue_length=1, cap=1)
    queued = with_status(
        session, plan(session, Observed(), runner, settings, now, context=ctx).status
    )
    result = plan(queued, Observed(job=_job(active=1)), runner, settings, now)
    assert result.status is not None and not result.create
    cond = next(c for c in result.status.conditions if c.type == "Queued")
    assert (cond.status, cond.reason) == ("False", "Admitted")
    assert result.status.reason == "WorkloadCreated"
