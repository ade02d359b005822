"""The reconcile decision, as one pure function.

``plan`` looks at a Session and what the cluster holds for it (its Job and newest Pod)
and says what should exist and what the status should be. It performs no I/O: the
handlers feed it from watch-fed indexes and carry out the plan. Because the plan depends
only on observed state, and every history entry has a deterministic id, running it again
after a crash converges instead of duplicating anything.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ambient.crds import naming
from ambient.crds.events import HistoryEvent
from ambient.crds.models import TERMINAL_PHASES, HistoryEntry, Phase, Session, SessionStatus
from ambient.crds.times import parse
from ambient.operator.sessions import builders, lifecycle
from ambient.operator.sessions.observe import JobView, PodView, runner_verdict
from ambient.operator.sessions.status import StatusEditor
from ambient.operator.settings import OperatorSettings
from ambient.runners.registry import ResolvedRunner, UnknownFrameworkError

# Condition types, per the Kubernetes API conventions (positive polarity).
POLICY_VALIDATED = "PolicyValidated"
APPROVED = "Approved"
WORKLOAD_CREATED = "WorkloadCreated"
WORKLOAD_RUNNING = "WorkloadRunning"
SUCCEEDED = "Succeeded"
QUEUED = "Queued"
POLICY_COMPLIANT = "PolicyCompliant"

JOB_CREATED_REASON = "WorkloadCreated"
"""The Pending reason while the runner's Job exists and its pod does not run yet."""
RUNNING_REASON = "Running"
"""The Running reason while the runner's pod runs."""

# Waiting reasons that mean the pod will not start without someone acting.
STUCK_WAITING = frozenset(
    {"ImagePullBackOff", "ErrImagePull", "CreateContainerConfigError", "InvalidImageName"}
)


@dataclass(frozen=True)
class Observed:
    """What the cluster holds for one Session."""

    job: JobView | None = None
    pod: PodView | None = None
    others: tuple[JobView, ...] = ()
    """The Session's Jobs of other attempts (to remove any left running)."""


@dataclass(frozen=True)
class Plan:
    """What to do: objects to create (in order) and the status to write, if it changed."""

    create: list[dict[str, Any]] = field(default_factory=list)
    status: SessionStatus | None = None
    added: list[HistoryEntry] = field(default_factory=list)
    delete: list[str] = field(default_factory=list)
    """Runner Jobs to remove (with their pods): cancelled, timed out, stopped, superseded."""

    @property
    def idle(self) -> bool:
        """Nothing to do."""
        return not self.create and self.status is None


def approver(session: Session) -> str | None:
    """Who approved the Session (the admission webhook checks who may set the mark)."""
    value = session.metadata.annotations.get(naming.ANNOTATION_APPROVED_BY, "").strip()
    return value or None


def _failure(job: JobView, pod: PodView | None) -> tuple[str, str, dict[str, str]]:
    """Reason, message and history data for a failed Job, from the most specific source."""
    term = pod.termination if pod else None
    data = {"jobName": job.name, "podName": pod.name if pod else ""}
    if job.failure_reason == "DeadlineExceeded":
        return "TimedOut", f"the runner did not finish in time: {job.failure_message}", data
    if term is not None and term.exit_code != 0:
        reason = "OOMKilled" if term.reason == "OOMKilled" else "Error"
        message = f"runner exited with code {term.exit_code}"
        verdict = runner_verdict(term.message)
        if verdict is not None and reason != "OOMKilled":
            reason, text = verdict  # the runner said why (e.g. BudgetExceeded)
            message += f": {text}"
        elif term.message:
            message += f": {term.message}"
        data |= {"exitCode": str(term.exit_code), "message": term.message[:4000]}
        return reason, message, data
    reason = job.failure_reason or "JobFailed"
    return reason, job.failure_message or "the runner Job failed", data


def plan(
    session: Session,
    observed: Observed,
    runner: ResolvedRunner | UnknownFrameworkError,
    settings: OperatorSettings,
    now: datetime,
    *,
    context: lifecycle.Context | None = None,
) -> Plan:
    """Decide the next step for a Session. Pure: same input, same plan."""
    ctx = context or lifecycle.Context()
    edit = StatusEditor(session.status, now, session.metadata.generation)
    trigger = session.spec.trigger
    edit.append(
        "created",
        HistoryEvent.SESSION_CREATED,
        {
            "source": trigger.source.value,
            "event": trigger.event,
            "deliveryId": trigger.delivery_id or "",
            # A replayed delivery names who replayed it (checked by the admission webhook).
            **(
                {"replayedBy": replayed_by}
                if (replayed_by := session.metadata.annotations.get(naming.ANNOTATION_REPLAYED_BY))
                else {}
            ),
        },
    )
    create = (
        _decide(session, observed, runner, settings, edit, ctx=ctx)
        if (session.status.phase not in TERMINAL_PHASES)
        else []
    )
    changed = edit.status != session.status
    return Plan(
        create=create,
        status=edit.status if changed else None,
        added=edit.added,
        delete=_leftovers(session, observed, edit.status),
    )


def only_progress(status: SessionStatus) -> tuple[str, ...] | None:
    """The news, when the status says no more than that the work goes on as it should:
    the runner's Job exists (its pod neither running nor stuck) or its pod runs, with the
    last history entry that says so. Such a write can wait a moment to be made with the
    next (often the outcome). None for anything a reader must see at once: an outcome, a
    stuck pod, a queue, an approval."""
    progress = (status.phase == Phase.PENDING and status.reason == JOB_CREATED_REASON) or (
        status.phase == Phase.RUNNING and status.reason == RUNNING_REASON
    )
    if not progress or status.phase is None:
        return None
    last = status.history[-1].event if status.history else ""
    return (status.phase.value, status.reason or "", last)


def _leftovers(session: Session, observed: Observed, status: SessionStatus) -> list[str]:
    """Owned Jobs still running that should not be: every Job of a finished Session, and
    Jobs of attempts other than the current one. Level-triggered, so a crash between the
    status write and the delete is repaired by the next reconcile."""
    jobs = [*observed.others, *([observed.job] if observed.job is not None else [])]
    done = status.phase in TERMINAL_PHASES
    return [
        j.name
        for j in jobs
        if j.owner_uid == session.metadata.uid
        and lifecycle.job_active(j)
        and (done or j.name != status.workload.job_name)
    ]


def _decide(
    session: Session,
    observed: Observed,
    runner: ResolvedRunner | UnknownFrameworkError,
    settings: OperatorSettings,
    edit: StatusEditor,
    *,
    ctx: lifecycle.Context,
) -> list[dict[str, Any]]:
    if session.spec.cancel:
        _cancel(session, edit)
        return []
    if ctx.refusals and observed.job is None and not edit.status.workload.job_name:
        _refuse(edit, ctx)
        return []
    if _policy_changed(session, edit, ctx):
        return []
    if isinstance(runner, UnknownFrameworkError):
        edit.condition(POLICY_VALIDATED, False, "UnknownFramework", str(runner))
        edit.append("framework-unknown", HistoryEvent.FRAMEWORK_UNKNOWN, {"message": str(runner)})
        edit.phase(Phase.FAILED, "UnknownFramework", str(runner))
        return []
    edit.condition(
        POLICY_VALIDATED,
        True,
        "Accepted",
        f"admitted; framework {runner.framework}@{runner.version} runs image {runner.image}",
    )

    # Approval is a gate before the Job, not a condition on it: once approved (or once a
    # Job exists), removing the annotation does not stop the work.
    if session.spec.policy.approval_required and not edit.has("approved"):
        who = approver(session)
        if who is None and observed.job is None:
            if lifecycle.approval_expired(edit.status, ctx.lifecycle, edit_now(edit)):
                message = (
                    f"no approval within {ctx.lifecycle.approval_timeout_seconds}s "
                    "(NamespacePolicy spec.lifecycle.approvalTimeoutSeconds)"
                )
                edit.condition(APPROVED, False, "ApprovalExpired", message)
                edit.append("approval-expired", HistoryEvent.APPROVAL_EXPIRED)
                edit.phase(Phase.FAILED, "ApprovalExpired", message)
                return []
            edit.condition(APPROVED, False, "AwaitingApproval", "waiting for an approver")
            edit.append("awaiting-approval", HistoryEvent.AWAITING_APPROVAL)
            edit.phase(
                Phase.PENDING,
                "AwaitingApproval",
                f"an approver must annotate the Session with {naming.ANNOTATION_APPROVED_BY}",
            )
            return []
        if who is not None:
            edit.condition(APPROVED, True, "Approved", f"approved by {who}")
            edit.append("approved", HistoryEvent.APPROVED, {"approvedBy": who})
    return _workload(session, observed, runner, settings, edit, ctx=ctx)


def edit_now(edit: StatusEditor) -> datetime:
    """The editor's time as a datetime (it keeps the RFC 3339 text)."""
    return parse(edit.now)


def attempt_of(status: SessionStatus) -> int:
    """The current attempt; 1 before any retry."""
    return status.attempt or 1


def _cancel(session: Session, edit: StatusEditor) -> None:
    who = session.metadata.annotations.get(naming.ANNOTATION_CANCELLED_BY, "").strip()
    message = f"cancelled by {who}" if who else "cancelled (spec.cancel is true)"
    edit.condition(WORKLOAD_RUNNING, False, "Cancelled", message)
    edit.append(
        "cancelled",
        HistoryEvent.CANCELLED,
        {"cancelledBy": who or "unknown", "jobName": edit.status.workload.job_name or ""},
    )
    edit.phase(Phase.FAILED, "Cancelled", message)


def _refuse(edit: StatusEditor, ctx: lifecycle.Context) -> None:
    """The namespace's policy does not admit the Session (admission skipped it, or the
    policy changed before it started): no runner, Failed with every reason."""
    codes = ",".join(sorted({v.code.value for v in ctx.refusals}))
    message = "; ".join(v.message for v in ctx.refusals)
    data = {
        "codes": codes,
        "message": message[:4000],
        "policyGeneration": str(ctx.policy_generation),
    }
    edit.condition(POLICY_VALIDATED, False, "PolicyViolation", message)
    edit.append(f"policy-refused/g{ctx.policy_generation}", HistoryEvent.POLICY_VIOLATION, data)
    edit.phase(
        Phase.FAILED,
        "PolicyViolation",
        f"the operator refuses to start it: the NamespacePolicy does not admit it: {message}",
    )


def _policy_changed(session: Session, edit: StatusEditor, ctx: lifecycle.Context) -> bool:
    """Apply a changed NamespacePolicy; True when it stopped the Session."""
    if not ctx.has_policy:
        return False
    if not ctx.violations:
        found = edit.get_condition(POLICY_COMPLIANT)
        if found is not None and found.status != "True":
            edit.condition(POLICY_COMPLIANT, True, "Compliant", "the Session meets the policy")
        return False
    codes = ",".join(sorted({v.code.value for v in ctx.violations}))
    message = "; ".join(v.message for v in ctx.violations)
    data = {
        "codes": codes,
        "message": message[:4000],
        "policyGeneration": str(ctx.policy_generation),
    }
    edit.condition(POLICY_COMPLIANT, False, "PolicyViolation", message)
    if lifecycle.stops(ctx):
        edit.append(
            f"policy-violation/g{ctx.policy_generation}", HistoryEvent.POLICY_VIOLATION, data
        )
        edit.phase(Phase.FAILED, "PolicyViolation", f"stopped: {message}")
        return True
    edit.append(
        f"policy-flagged/g{ctx.policy_generation}", HistoryEvent.POLICY_VIOLATION_FLAGGED, data
    )
    return False


def _workload(
    session: Session,
    observed: Observed,
    runner: ResolvedRunner,
    settings: OperatorSettings,
    edit: StatusEditor,
    *,
    ctx: lifecycle.Context,
) -> list[dict[str, Any]]:
    """Create the Job, or follow the one that exists."""
    attempt = attempt_of(edit.status)
    job_name = naming.job_name(session.metadata.name, attempt)
    job = observed.job
    timeout = lifecycle.effective_timeout(session, ctx.lifecycle, runner.timeout_seconds)
    if lifecycle.timed_out(edit.status, timeout, edit_now(edit)) and not (
        job is not None and (job.complete or job.failed)
    ):
        message = f"the Session did not finish within {timeout}s"
        edit.condition(WORKLOAD_RUNNING, False, "TimedOut", message)
        edit.append(
            "timed-out",
            HistoryEvent.TIMED_OUT,
            {"jobName": job_name, "timeoutSeconds": str(timeout)},
        )
        edit.phase(Phase.FAILED, "TimedOut", message)
        return []
    if job is None:
        if edit.status.workload.job_name:
            message = (
                f"Job {edit.status.workload.job_name} disappeared before its result was recorded"
            )
            edit.condition(WORKLOAD_RUNNING, False, "WorkloadLost", message)
            edit.append(f"{job_name}/lost", HistoryEvent.WORKLOAD_LOST, {"jobName": job_name})
            edit.phase(Phase.FAILED, "WorkloadLost", message)
            return []
        if not ctx.admitted:
            _queued(edit, ctx)
            return []
        _admitted(edit)
        bounded = session
        if timeout != (session.spec.timeout_seconds or runner.timeout_seconds):
            spec = session.spec.model_copy(update={"timeout_seconds": timeout})
            bounded = session.model_copy(update={"spec": spec})
        context = builders.context_json(
            builders.runner_context(bounded, runner, job_name, ctx.blocked_tools)
        )
        manifests = []
        if len(context.encode()) > settings.max_inline_context_bytes:
            manifests.append(builders.context_configmap(bounded, runner, job_name, context))
        job_manifest = builders.runner_job(bounded, runner, settings, job_name, context)
        job_manifest["metadata"]["labels"][naming.LABEL_ATTEMPT] = str(attempt)
        manifests.append(job_manifest)
        edit.status.attempt = attempt
        _record_created(edit, job_name)
        edit.phase(Phase.PENDING, JOB_CREATED_REASON, f"runner Job {job_name} created")
        return manifests

    if job.owner_uid != session.metadata.uid:
        message = f"a Job named {job.name} exists and is not owned by this Session"
        edit.append(f"{job.name}/conflict", HistoryEvent.WORKLOAD_CONFLICT, {"jobName": job.name})
        edit.phase(Phase.FAILED, "WorkloadConflict", message)
        return []

    if edit.status.attempt is None:
        # The Job was created by a pass that left recording it to a later one (a burst
        # creates every Job before any status is written).
        edit.status.attempt = attempt
    _admitted(edit)  # likewise a queued Session's admission
    failure = lifecycle.attempt_failure(job, observed.pod, ctx.lifecycle.retries, edit_now(edit))
    if failure is not None and failure.retryable:
        if attempt <= ctx.lifecycle.retries.limit:
            _retry(session, edit=edit, job=job, pod=observed.pod, failure=failure, attempt=attempt)
            return []
        if not job.failed:  # a stuck image pull with no retries left ends the Session
            _record_created(edit, job.name)
            edit.append(
                f"{job.name}/failed",
                HistoryEvent.WORKLOAD_FAILED,
                {"jobName": job.name, "reason": failure.reason},
            )
            edit.phase(Phase.FAILED, failure.reason, failure.message)
            return []
    _follow(edit, job, observed.pod)
    return []


def _retry(
    session: Session,
    *,
    edit: StatusEditor,
    job: JobView,
    pod: PodView | None,
    failure: lifecycle.AttemptFailure,
    attempt: int,
) -> None:
    """End this attempt and make room for the next one (created by the next reconcile)."""
    _record_created(edit, job.name)
    edit.append(
        f"{job.name}/retry",
        HistoryEvent.ATTEMPT_FAILED,
        {
            "jobName": job.name,
            "podName": pod.name if pod else "",
            "reason": failure.reason,
            "message": failure.message[:4000],
            "attempt": str(attempt),
            "nextAttempt": str(attempt + 1),
            "correlationId": lifecycle.correlation_id(session, attempt),
        },
    )
    edit.status.attempt = attempt + 1
    edit.status.workload.job_name = None
    edit.status.workload.pod_name = None
    message = f"attempt {attempt} failed ({failure.reason}); attempt {attempt + 1} follows"
    edit.condition(WORKLOAD_RUNNING, False, failure.reason, message)
    edit.phase(Phase.PENDING, "Retrying", message)


def _queued(edit: StatusEditor, ctx: lifecycle.Context) -> None:
    message = (
        f"position {ctx.queue_position} of {ctx.queue_length} waiting for one of "
        f"{ctx.cap} concurrent Session slots"
    )
    edit.condition(QUEUED, True, "Queued", message)
    edit.append("queued", HistoryEvent.QUEUED, {"position": str(ctx.queue_position)})
    edit.phase(Phase.PENDING, "Queued", message)


def _admitted(edit: StatusEditor) -> None:
    if edit.get_condition(QUEUED) is not None:
        edit.condition(QUEUED, False, "Admitted", "admitted under the concurrency cap")


def _follow(edit: StatusEditor, job: JobView, pod: PodView | None) -> None:
    """Mirror the Job and its Pod into the status."""
    _record_created(edit, job.name)
    if pod is not None and (pod.phase != "Pending" or job.complete or job.failed or _stuck(pod)):
        # Recorded with the first write that says something of the pod: a pod that is
        # only scheduled would cost the API server a status write of its own per Session.
        edit.status.workload.pod_name = pod.name
    if pod is not None and (pod.phase in ("Running", "Succeeded", "Failed") or job.complete):
        _record_started(edit, job.name, pod)

    if job.complete:
        edit.condition(WORKLOAD_RUNNING, False, "Finished", "the runner finished")
        edit.condition(SUCCEEDED, True, "Succeeded", "the runner exited 0")
        edit.append(
            f"{job.name}/succeeded",
            HistoryEvent.WORKLOAD_SUCCEEDED,
            {"jobName": job.name, "podName": pod.name if pod else ""},
        )
        edit.phase(Phase.COMPLETED, "Succeeded", "the runner finished successfully")
    elif job.failed:
        reason, message, data = _failure(job, pod)
        edit.condition(WORKLOAD_RUNNING, False, reason, message)
        edit.condition(SUCCEEDED, False, reason, message)
        edit.append(f"{job.name}/failed", HistoryEvent.WORKLOAD_FAILED, data | {"reason": reason})
        edit.phase(Phase.FAILED, reason, message)
    elif pod is not None and pod.phase == "Running":
        edit.condition(WORKLOAD_RUNNING, True, "PodRunning", f"pod {pod.name} is running")
        edit.phase(Phase.RUNNING, RUNNING_REASON, f"pod {pod.name} is running")
    elif pod is not None and _stuck(pod):
        message = f"pod {pod.name}: {pod.waiting_reason} {pod.waiting_message}".strip()
        edit.condition(WORKLOAD_RUNNING, False, pod.waiting_reason, message)
        edit.phase(Phase.PENDING, pod.waiting_reason, message)
    elif edit.status.phase != Phase.RUNNING:
        edit.phase(Phase.PENDING, JOB_CREATED_REASON, f"runner Job {job.name} created")


def _stuck(pod: PodView) -> bool:
    """The pod waits for something that will not come by itself (a user must act)."""
    return pod.waiting_reason in STUCK_WAITING


def _record_created(edit: StatusEditor, job_name: str) -> None:
    edit.status.workload.job_name = job_name
    edit.condition(WORKLOAD_CREATED, True, "JobCreated", f"runner Job {job_name} created")
    edit.append(f"{job_name}/created", HistoryEvent.WORKLOAD_CREATED, {"jobName": job_name})


def _record_started(edit: StatusEditor, job_name: str, pod: PodView) -> None:
    if not edit.status.start_time:
        edit.status.start_time = edit.now
    edit.append(
        f"{job_name}/started",
        HistoryEvent.WORKLOAD_STARTED,
        {"podName": pod.name, "jobName": job_name},
    )
