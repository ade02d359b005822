"""The pure reconcile decision: from a Session and what the cluster holds to a Plan."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest

from ambient.common.policy import Code, Violation
from ambient.crds import naming
from ambient.crds.models import ConditionStatus, HistoryEntry, Phase, Session, SessionStatus
from ambient.crds.times import rfc3339
from ambient.operator.sessions.lifecycle import Context
from ambient.operator.sessions.observe import JobView, PodView, Termination
from ambient.operator.sessions.planner import Observed, Plan, only_progress, plan
from ambient.operator.settings import OperatorSettings
from ambient.runners.registry import Registry, ResolvedRunner, UnknownFrameworkError, resolve

MakeSession = Callable[..., Session]
Advance = Callable[[Session, SessionStatus | None], Session]
Later = Callable[[int], datetime]

UID = "5b1c2f4e-0000-4000-8000-000000000001"
JOB = naming.job_name("review-pr-42", 1)


def _events(status: SessionStatus | None) -> list[str]:
    assert status is not None
    return [e.event for e in status.history]


def _cond(status: SessionStatus, ctype: str) -> Any:
    found = [c for c in status.conditions if c.type == ctype]
    assert len(found) == 1, f"exactly one {ctype} condition"
    return found[0]


def _job(**kwargs: Any) -> JobView:
    return JobView(**{"name": JOB, "owner_uid": UID, **kwargs})


def _run(
    created: Session,
    runner: ResolvedRunner,
    settings: OperatorSettings,
    later: Later,
    with_status: Advance,
) -> Session:
    """The Session after its pod was seen Running one second later."""
    observed = Observed(job=_job(active=1), pod=_pod(phase="Running"))
    return with_status(created, plan(created, observed, runner, settings, later(1)).status)


def _pod(**kwargs: Any) -> PodView:
    return PodView(**{"name": f"{JOB}-x7k2p", "job_name": JOB, "phase": "Pending", **kwargs})


@pytest.fixture
def created(
    make_session: MakeSession,
    runner: ResolvedRunner,
    settings: OperatorSettings,
    now: datetime,
    with_status: Advance,
) -> Session:
    """A Session after the first reconcile wrote its status (Job created)."""
    session = make_session()
    first = plan(session, Observed(), runner, settings, now)
    return with_status(session, first.status)


def test_fresh_session_creates_one_job(
    make_session: MakeSession, runner: ResolvedRunner, settings: OperatorSettings, now: datetime
) -> None:
    session = make_session()
    result = plan(session, Observed(), runner, settings, now)

    assert [m["kind"] for m in result.create] == ["Job"]
    assert result.create[0]["metadata"]["name"] == JOB
    status = result.status
    assert status is not None
    assert (status.phase, status.reason) == (Phase.PENDING, "WorkloadCreated")
    assert [(e.seq, e.event) for e in status.history] == [
        (0, "SessionCreated"),
        (1, "WorkloadCreated"),
    ]
    assert status.history[0].data == {
        "source": "github",
        "event": "pull_request.opened",
        "deliveryId": "d-1",
    }
    assert status.history[1].data == {"jobName": JOB}
    assert all(e.timestamp == rfc3339(now) for e in status.history)
    assert result.added == status.history
    assert status.workload.job_name == JOB
    assert _cond(status, "PolicyValidated").status == ConditionStatus.TRUE
    assert _cond(status, "WorkloadCreated").status == ConditionStatus.TRUE
    assert status.observed_generation == 1
    assert status.start_time is None and status.completion_time is None
    assert not result.idle


def test_session_created_entry_drops_empty_delivery_id(
    make_session: MakeSession, runner: ResolvedRunner, settings: OperatorSettings, now: datetime
) -> None:
    result = plan(make_session(delivery_id=None), Observed(), runner, settings, now)
    assert result.status is not None
    assert "deliveryId" not in result.status.history[0].data


def test_replanning_with_the_job_observed_is_idempotent(
    created: Session,
    runner: ResolvedRunner,
    settings: OperatorSettings,
    later: Later,
    with_status: Advance,
) -> None:
    second = plan(created, Observed(job=_job()), runner, settings, later(1))
    assert second.create == []
    assert second.added == []
    after = with_status(created, second.status)
    assert after.status.history == created.status.history
    assert after.status.phase == Phase.PENDING
    assert after.status.reason == "WorkloadCreated"

    third = plan(after, Observed(job=_job()), runner, settings, later(2))
    assert third.idle, "the plan converges: nothing left to do or write"
    assert third.added == []


def test_replanning_before_the_status_was_written_still_creates_nothing_new(
    make_session: MakeSession, runner: ResolvedRunner, settings: OperatorSettings, now: datetime
) -> None:
    """A crash between creating the Job and writing the status: the Job is adopted."""
    session = make_session()
    result = plan(session, Observed(job=_job()), runner, settings, now)
    assert result.create == []
    assert _events(result.status) == ["SessionCreated", "WorkloadCreated"]


def test_pod_pending_stays_pending_with_nothing_to_write(
    created: Session, runner: ResolvedRunner, settings: OperatorSettings, later: Later
) -> None:
    """A pending pod (not stuck) says nothing new: no write of its own; its name is
    recorded with the write that says it started."""
    pending = plan(created, Observed(job=_job(active=1), pod=_pod()), runner, settings, later(1))
    assert pending.status is None, "nothing to write"
    assert pending.added == [] and pending.create == []

    running = plan(
        created, Observed(job=_job(active=1), pod=_pod(phase="Running")), runner, settings, later(2)
    )
    assert running.status is not None
    assert running.status.workload.pod_name == _pod().name


def test_a_stuck_pod_is_named_with_its_reason(
    created: Session, runner: ResolvedRunner, settings: OperatorSettings, later: Later
) -> None:
    pod = _pod(waiting_reason="ImagePullBackOff", waiting_message="no such image")
    result = plan(created, Observed(job=_job(active=1), pod=pod), runner, settings, later(1))
    assert result.status is not None
    assert (result.status.phase, result.status.reason) == (Phase.PENDING, "ImagePullBackOff")
    assert result.status.workload.pod_name == pod.name


def test_pod_running_moves_to_running(
    created: Session, runner: ResolvedRunner, settings: OperatorSettings, later: Later
) -> None:
    pod = _pod(phase="Running")
    result = plan(created, Observed(job=_job(active=1), pod=pod), runner, settings, later(1))
    status = result.status
    assert status is not None
    assert (status.phase, status.reason) == (Phase.RUNNING, "Running")
    assert _events(status) == ["SessionCreated", "WorkloadCreated", "WorkloadStarted"]
    started = status.history[-1]
    assert started.seq == 2
    assert started.data == {"podName": pod.name, "jobName": JOB}
    assert status.start_time == rfc3339(later(1))
    assert status.workload.pod_name == pod.name
    assert _cond(status, "WorkloadRunning").status == ConditionStatus.TRUE
    assert status.completion_time is None
    assert [e.event for e in result.added] == ["WorkloadStarted"]


def test_stuck_pod_is_reported(
    created: Session, runner: ResolvedRunner, settings: OperatorSettings, later: Later
) -> None:
    pod = _pod(waiting_reason="ImagePullBackOff", waiting_message="Back-off pulling image")
    result = plan(created, Observed(job=_job(), pod=pod), runner, settings, later(1))
    status = result.status
    assert status is not None
    assert (status.phase, status.reason) == (Phase.PENDING, "ImagePullBackOff")
    assert status.message is not None and pod.name in status.message
    assert "Back-off pulling image" in status.message
    assert _cond(status, "WorkloadRunning").reason == "ImagePullBackOff"


def test_job_complete_moves_to_completed(
    created: Session,
    runner: ResolvedRunner,
    settings: OperatorSettings,
    later: Later,
    with_status: Advance,
) -> None:
    running = _run(created, runner, settings, later, with_status)
    done_pod = _pod(phase="Succeeded", termination=Termination(exit_code=0, reason="Completed"))
    result = plan(
        running, Observed(job=_job(complete=True), pod=done_pod), runner, settings, later(5)
    )
    status = result.status
    assert status is not None
    assert (status.phase, status.reason) == (Phase.COMPLETED, "Succeeded")
    succeeded = _cond(status, "Succeeded")
    assert succeeded.status == ConditionStatus.TRUE
    assert succeeded.last_transition_time == rfc3339(later(5))
    assert _cond(status, "WorkloadRunning").status == ConditionStatus.FALSE
    assert status.completion_time == rfc3339(later(5))
    assert status.start_time == rfc3339(later(1)), "start time is kept"
    assert _events(status)[-1] == "WorkloadSucceeded"
    assert _events(status).count("WorkloadStarted") == 1
    assert [e.seq for e in status.history] == list(range(len(status.history)))


def test_job_complete_without_seeing_it_run_records_start(
    created: Session, runner: ResolvedRunner, settings: OperatorSettings, later: Later
) -> None:
    pod = _pod(phase="Succeeded", termination=Termination(exit_code=0))
    result = plan(created, Observed(job=_job(complete=True), pod=pod), runner, settings, later(2))
    assert _events(result.status) == [
        "SessionCreated",
        "WorkloadCreated",
        "WorkloadStarted",
        "WorkloadSucceeded",
    ]
    assert result.status is not None and result.status.start_time is not None


def test_job_failed_with_exit_code(
    created: Session, runner: ResolvedRunner, settings: OperatorSettings, later: Later
) -> None:
    pod = _pod(phase="Failed", termination=Termination(exit_code=3, reason="Error", message="boom"))
    job = _job(failed=True, failure_reason="BackoffLimitExceeded", failure_message="limit")
    result = plan(created, Observed(job=job, pod=pod), runner, settings, later(3))
    status = result.status
    assert status is not None
    assert (status.phase, status.reason) == (Phase.FAILED, "Error")
    assert status.message is not None and "exited with code 3: boom" in status.message
    failed = status.history[-1]
    assert failed.event == "WorkloadFailed"
    assert failed.data["exitCode"] == "3"
    assert failed.data["message"] == "boom"
    assert failed.data["reason"] == "Error"
    assert failed.data["podName"] == pod.name
    assert _cond(status, "Succeeded").status == ConditionStatus.FALSE
    assert _cond(status, "Succeeded").reason == "Error"
    assert status.completion_time == rfc3339(later(3))


def test_oom_killed(
    created: Session, runner: ResolvedRunner, settings: OperatorSettings, later: Later
) -> None:
    pod = _pod(phase="Failed", termination=Termination(exit_code=137, reason="OOMKilled"))
    result = plan(created, Observed(job=_job(failed=True), pod=pod), runner, settings, later(3))
    assert result.status is not None
    assert result.status.reason == "OOMKilled"
    assert result.status.message == "runner exited with code 137"


def test_deadline_exceeded_is_timed_out(
    created: Session, runner: ResolvedRunner, settings: OperatorSettings, later: Later
) -> None:
    job = _job(
        failed=True,
        failure_reason="DeadlineExceeded",
        failure_message="Job was active longer than specified deadline",
    )
    pod = _pod(phase="Failed", termination=Termination(exit_code=137, reason="Error"))
    result = plan(created, Observed(job=job, pod=pod), runner, settings, later(60))
    status = result.status
    assert status is not None
    assert (status.phase, status.reason) == (Phase.FAILED, "TimedOut")
    assert status.message is not None and "longer than specified deadline" in status.message
    assert status.history[-1].data["reason"] == "TimedOut"


def test_failed_job_without_pod_detail_uses_job_reason(
    created: Session, runner: ResolvedRunner, settings: OperatorSettings, later: Later
) -> None:
    job = _job(failed=True, failure_reason="BackoffLimitExceeded", failure_message="too many")
    result = plan(created, Observed(job=job), runner, settings, later(3))
    assert result.status is not None
    assert (result.status.reason, result.status.message) == ("BackoffLimitExceeded", "too many")
    assert "exitCode" not in result.status.history[-1].data


def test_unknown_framework_fails_without_a_job(
    make_session: MakeSession,
    registry: Registry,
    settings: OperatorSettings,
    now: datetime,
) -> None:
    with pytest.raises(UnknownFrameworkError) as info:
        resolve(registry, "autogen")
    result = plan(make_session(framework="autogen"), Observed(), info.value, settings, now)
    status = result.status
    assert status is not None
    assert result.create == []
    assert (status.phase, status.reason) == (Phase.FAILED, "UnknownFramework")
    assert status.message is not None
    for known in ("claude-code", "script", "langgraph", "crewai", "agno", "n8n"):
        assert known in status.message
    assert _events(status) == ["SessionCreated", "FrameworkUnknown"]
    assert _cond(status, "PolicyValidated").status == ConditionStatus.FALSE
    assert status.workload.job_name is None
    assert status.completion_time == rfc3339(now)


def test_approval_required_waits_for_an_approver(
    make_session: MakeSession,
    *,
    runner: ResolvedRunner,
    settings: OperatorSettings,
    now: datetime,
    later: Later,
    with_status: Advance,
) -> None:
    session = make_session(approval_required=True)
    result = plan(session, Observed(), runner, settings, now)
    status = result.status
    assert status is not None
    assert result.create == []
    assert (status.phase, status.reason) == (Phase.PENDING, "AwaitingApproval")
    assert status.message is not None and naming.ANNOTATION_APPROVED_BY in status.message
    assert _events(status) == ["SessionCreated", "AwaitingApproval"]
    assert _cond(status, "Approved").status == ConditionStatus.FALSE

    waiting = with_status(session, status)
    assert plan(waiting, Observed(), runner, settings, later(1)).idle


def test_approved_session_gets_a_job(
    make_session: MakeSession,
    *,
    runner: ResolvedRunner,
    settings: OperatorSettings,
    now: datetime,
    later: Later,
    with_status: Advance,
) -> None:
    waiting_status = plan(
        make_session(approval_required=True), Observed(), runner, settings, now
    ).status
    approved = with_status(
        make_session(approval_required=True, annotations={naming.ANNOTATION_APPROVED_BY: "alice"}),
        waiting_status,
    )
    result = plan(approved, Observed(), runner, settings, later(10))
    status = result.status
    assert status is not None
    assert [m["kind"] for m in result.create] == ["Job"]
    assert _events(status) == ["SessionCreated", "AwaitingApproval", "Approved", "WorkloadCreated"]
    assert status.history[2].data == {"approvedBy": "alice"}
    cond = _cond(status, "Approved")
    assert cond.status == ConditionStatus.TRUE
    assert cond.last_transition_time == rfc3339(later(10)), "the condition flipped"
    assert "alice" in cond.message


def test_blank_approval_annotation_is_not_an_approval(
    make_session: MakeSession, runner: ResolvedRunner, settings: OperatorSettings, now: datetime
) -> None:
    session = make_session(
        approval_required=True, annotations={naming.ANNOTATION_APPROVED_BY: "  "}
    )
    result = plan(session, Observed(), runner, settings, now)
    assert result.create == []
    assert result.status is not None and result.status.reason == "AwaitingApproval"


@pytest.mark.parametrize("owner", ["someone-else", None])
def test_job_owned_by_someone_else_is_a_conflict(
    make_session: MakeSession,
    runner: ResolvedRunner,
    settings: OperatorSettings,
    now: datetime,
    owner: str | None,
) -> None:
    result = plan(make_session(), Observed(job=_job(owner_uid=owner)), runner, settings, now)
    status = result.status
    assert status is not None
    assert result.create == []
    assert (status.phase, status.reason) == (Phase.FAILED, "WorkloadConflict")
    assert status.message is not None and JOB in status.message
    assert _events(status) == ["SessionCreated", "WorkloadConflict"]


def test_recorded_job_that_vanished_is_lost(
    created: Session, runner: ResolvedRunner, settings: OperatorSettings, later: Later
) -> None:
    result = plan(created, Observed(), runner, settings, later(1))
    status = result.status
    assert status is not None
    assert result.create == [], "a lost Job is not silently re-created"
    assert (status.phase, status.reason) == (Phase.FAILED, "WorkloadLost")
    assert _events(status)[-1] == "WorkloadLost"
    assert _cond(status, "WorkloadRunning").reason == "WorkloadLost"


@pytest.mark.parametrize("phase", [Phase.COMPLETED, Phase.FAILED])
def test_terminal_session_is_left_alone(
    created: Session,
    *,
    runner: ResolvedRunner,
    settings: OperatorSettings,
    later: Later,
    with_status: Advance,
    phase: Phase,
) -> None:
    done = created.status.model_copy(deep=True)
    done.phase = phase
    done.reason = "Succeeded" if phase == Phase.COMPLETED else "Error"
    finished = with_status(created, done)
    for observed in (
        Observed(),
        Observed(job=_job(owner_uid="other")),
        Observed(job=_job(failed=True)),
    ):
        result = plan(finished, observed, runner, settings, later(30))
        assert result.idle
        assert result.added == []


def test_conditions_keep_transition_time_until_they_flip(
    created: Session,
    *,
    runner: ResolvedRunner,
    settings: OperatorSettings,
    now: datetime,
    later: Later,
    with_status: Advance,
) -> None:
    pod = _pod(phase="Running")
    running = _run(created, runner, settings, later, with_status)
    assert _cond(running.status, "PolicyValidated").last_transition_time == rfc3339(now)
    assert _cond(running.status, "WorkloadCreated").last_transition_time == rfc3339(now)
    assert _cond(running.status, "WorkloadRunning").last_transition_time == rfc3339(later(1))

    again = plan(running, Observed(job=_job(active=1), pod=pod), runner, settings, later(2))
    assert again.idle, "nothing changed, so nothing is written (no timestamp churn)"

    done = plan(running, Observed(job=_job(complete=True), pod=pod), runner, settings, later(3))
    assert done.status is not None
    assert _cond(done.status, "WorkloadRunning").last_transition_time == rfc3339(later(3))
    assert _cond(done.status, "WorkloadCreated").last_transition_time == rfc3339(now)


@pytest.mark.parametrize(
    "observed",
    [
        Observed(),
        Observed(job=JobView(name=JOB, owner_uid=UID)),
        Observed(
            job=JobView(name=JOB, owner_uid=UID, failed=True),
            pod=PodView(
                name="p", job_name=JOB, phase="Failed", termination=Termination(exit_code=3)
            ),
        ),
    ],
    ids=["fresh", "job", "failed"],
)
def test_plan_is_pure(
    make_session: MakeSession,
    runner: ResolvedRunner,
    settings: OperatorSettings,
    now: datetime,
    observed: Observed,
) -> None:
    session = make_session(annotations={"sim.ambient.ai/exit-code": "3"})
    before = session.model_dump(mode="json")
    observed_before = (
        observed.job.model_dump() if observed.job else None,
        observed.pod.model_dump() if observed.pod else None,
    )
    runner_before = runner.model_dump()

    first: Plan = plan(session, observed, runner, settings, now)
    second: Plan = plan(session, observed, runner, settings, now)

    assert first == second
    assert json.dumps(first.create, sort_keys=True) == json.dumps(second.create, sort_keys=True)
    assert session.model_dump(mode="json") == before
    assert session.status == SessionStatus()
    assert (
        observed.job.model_dump() if observed.job else None,
        observed.pod.model_dump() if observed.pod else None,
    ) == observed_before
    assert runner.model_dump() == runner_before


def test_big_context_goes_to_a_configmap(
    make_session: MakeSession, runner: ResolvedRunner, settings: OperatorSettings, now: datetime
) -> None:
    payload = {"diff": "x" * (settings.max_inline_context_bytes + 1)}
    result = plan(make_session(payload=payload), Observed(), runner, settings, now)

    assert [m["kind"] for m in result.create] == ["ConfigMap", "Job"], "ConfigMap first"
    configmap, job = result.create
    cm_name = naming.context_configmap_name(JOB)
    assert configmap["metadata"]["name"] == cm_name
    assert configmap["metadata"]["ownerReferences"][0]["uid"] == UID
    context = json.loads(configmap["data"]["session.json"])
    assert context["trigger"]["payload"] == payload

    pod = job["spec"]["template"]
    assert naming.ANNOTATION_CONTEXT not in pod["metadata"]["annotations"]
    volume = next(v for v in pod["spec"]["volumes"] if v["name"] == "context")
    assert volume == {"name": "context", "configMap": {"name": cm_name}}


def test_context_exactly_at_the_limit_stays_inline(
    make_session: MakeSession, runner: ResolvedRunner, settings: OperatorSettings, now: datetime
) -> None:
    assert settings.max_inline_context_bytes > 2000  # the fixture cleared AMBIENT_* variables
    session = make_session(payload={"diff": "x" * 2000})
    probe = plan(session, Observed(), runner, OperatorSettings(max_inline_context_bytes=1024), now)
    cm = probe.create[0]
    size = len(cm["data"]["session.json"].encode())

    at_limit = OperatorSettings(max_inline_context_bytes=size)
    result = plan(session, Observed(), runner, at_limit, now)
    assert [m["kind"] for m in result.create] == ["Job"]
    annotations = result.create[0]["spec"]["template"]["metadata"]["annotations"]
    assert annotations[naming.ANNOTATION_CONTEXT] == cm["data"]["session.json"]

    below = OperatorSettings(max_inline_context_bytes=size - 1)
    assert [m["kind"] for m in plan(session, Observed(), runner, below, now).create] == [
        "ConfigMap",
        "Job",
    ]


def test_approval_is_not_revoked_once_the_job_exists(
    make_session: MakeSession,
    runner: ResolvedRunner,
    settings: OperatorSettings,
    *,
    later: Later,
    with_status: Advance,
) -> None:
    approved = make_session(
        approval_required=True, annotations={naming.ANNOTATION_APPROVED_BY: "alice"}
    )
    created = with_status(approved, plan(approved, Observed(), runner, settings, later(0)).status)
    unannotated = with_status(make_session(approval_required=True), created.status)
    pod = _pod(phase="Succeeded", termination=Termination(exit_code=0))
    result = plan(
        unannotated, Observed(job=_job(complete=True), pod=pod), runner, settings, later(9)
    )
    assert result.status is not None
    assert result.status.phase == Phase.COMPLETED


def test_a_replayed_session_names_who_replayed_it_in_its_history(
    make_session: MakeSession, runner: ResolvedRunner, settings: OperatorSettings, now: datetime
) -> None:
    replayed = make_session(annotations={naming.ANNOTATION_REPLAYED_BY: "alice"})
    status = plan(replayed, Observed(), runner, settings, now).status
    assert status is not None and status.history[0].data["replayedBy"] == "alice"
    plain = plan(make_session(), Observed(), runner, settings, now).status
    assert plain is not None and "replayedBy" not in plain.history[0].data


def test_a_session_the_policy_does_not_admit_is_refused_before_any_job(
    make_session: MakeSession,
    runner: ResolvedRunner,
    settings: OperatorSettings,
    now: datetime,
    created: Session,
) -> None:
    refusal = Violation(Code.MODEL_NOT_ALLOWED, "spec.policy", "model x is not allowed")
    ctx = Context(refusals=(refusal,), has_policy=True, policy_generation=3)
    result = plan(make_session(), Observed(), runner, settings, now, context=ctx)
    assert result.create == []
    status = result.status
    assert status is not None and (status.phase, status.reason) == (Phase.FAILED, "PolicyViolation")
    assert "the operator refuses to start it" in (status.message or "")
    assert _events(status)[-1] == "PolicyViolation"
    assert status.history[-1].data["codes"] == "ModelNotAllowed"
    # Once its Job exists, refusals no longer apply (the ongoing rules do).
    later = plan(created, Observed(job=_job(active=1)), runner, settings, now, context=ctx)
    assert later.status is None or later.status.phase != Phase.FAILED


@pytest.mark.parametrize(
    ("phase", "reason", "news"),
    [
        (Phase.PENDING, "WorkloadCreated", ("Pending", "WorkloadCreated", "WorkloadCreated")),
        (Phase.RUNNING, "Running", ("Running", "Running", "WorkloadCreated")),
        (Phase.PENDING, "ErrImagePull", None),  # stuck: a user must act, say it at once
        (Phase.PENDING, "Queued", None),
        (Phase.PENDING, "AwaitingApproval", None),
        (Phase.PENDING, "Retrying", None),
        (Phase.COMPLETED, "Succeeded", None),
        (Phase.FAILED, "TimedOut", None),
    ],
)
def test_only_progress_may_wait_to_be_written(
    phase: Phase, reason: str, news: tuple[str, ...] | None
) -> None:
    entry = HistoryEntry(
        seq=0, id="job/created", timestamp="2026-01-01T00:00:00Z", event="WorkloadCreated"
    )
    assert only_progress(SessionStatus(phase=phase, reason=reason, history=[entry])) == news


def test_a_pod_seen_only_once_it_finished_is_new_progress_though_the_phase_stays() -> None:
    """The Job not yet complete: still Pending, but the start is news of its own."""
    created = HistoryEntry(
        seq=0, id="job/created", timestamp="2026-01-01T00:00:00Z", event="WorkloadCreated"
    )
    started = HistoryEntry(
        seq=1, id="job/started", timestamp="2026-01-01T00:00:00Z", event="WorkloadStarted"
    )
    before = SessionStatus(phase=Phase.PENDING, reason="WorkloadCreated", history=[created])
    after = before.model_copy(update={"history": [created, started]})
    assert only_progress(before) != only_progress(after)
