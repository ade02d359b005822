"""Pure lifecycle decisions: the queue, timeouts, retries and policy compliance.

No I/O: the handlers pass in what the watch-fed indexes hold and the time, so every rule
is unit-tested without a cluster. The planner applies these decisions to a Session.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from ambient.common.policy import Code, UserInfo, Violation, evaluate
from ambient.crds import naming
from ambient.crds.events import HistoryEvent
from ambient.crds.history import carried, operator_entries
from ambient.crds.models import (
    TERMINAL_PHASES,
    LifecyclePolicy,
    NamespacePolicy,
    RetryPolicy,
    Session,
    SessionStatus,
    ViolationAction,
    money,
)
from ambient.crds.times import parse_or_none
from ambient.operator.sessions.observe import JobView, PodView
from ambient.runners.registry import Registry

# How long past a Session's timeout the operator waits for the Job's own
# activeDeadlineSeconds to fire before it ends the Session itself.
TIMEOUT_GRACE_SECONDS = 10

# Pod-level reasons (pod.status.reason) that say the node or the cluster ended the pod.
INFRASTRUCTURE_REASONS = frozenset(
    {"Evicted", "NodeLost", "Preempting", "Shutdown", "Terminated", "NodeShutdown"}
)
PULL_WAITING = frozenset({"ErrImagePull", "ImagePullBackOff"})
# Violations of a changed policy that apply to a Session already admitted; the rest
# (approval, storage, the Session's own budget against what is left) were settled at
# admission and are not re-judged.
ONGOING_CODES = frozenset({Code.MODEL_NOT_ALLOWED, Code.TOOL_BLOCKED, Code.TOOL_NOT_ALLOWED})

QUEUED_REASON = "Queued"


@dataclass(frozen=True)
class Context:
    """What the handlers know beyond the Session and its Job: the namespace's policy and
    the admission decision. The defaults describe a namespace with no NamespacePolicy."""

    lifecycle: LifecyclePolicy = field(default_factory=LifecyclePolicy)
    admitted: bool = True
    """Whether a runner Job may be created now (the concurrency cap)."""
    queue_position: int = 0
    """1-based place in the namespace's queue when not admitted."""
    queue_length: int = 0
    cap: int = 0
    violations: tuple[Violation, ...] = ()
    """What a changed NamespacePolicy no longer allows (see ``violations``)."""
    policy_generation: int = 0
    has_policy: bool = False
    blocked_tools: tuple[str, ...] = ()
    """The policy's blocked tools, which the runner refuses whatever the Session allows."""
    refusals: tuple[Violation, ...] = ()
    """Why the namespace's policy does not admit this Session at all (every rule, as the
    admission webhook applies them): the operator starts no runner for it, even when
    admission was skipped (a namespace the webhook does not cover)."""


# --- time ---------------------------------------------------------------------------------


def first_entry_time(status: SessionStatus, event: HistoryEvent) -> datetime | None:
    """When the first history entry with this event was written (archived ones first)."""
    archived = next((c for c in carried(status.history) if c.event == event), None)
    if archived is not None:
        return parse_or_none(archived.timestamp)
    entry = next((e for e in operator_entries(status.history) if e.event == event), None)
    return parse_or_none(entry.timestamp) if entry else None


def effective_timeout(session: Session, lifecycle: LifecyclePolicy, runner_default: int) -> int:
    """The Session's timeout: its own, else the policy's default, else the runner's; never
    above the policy's maximum."""
    timeout = session.spec.timeout_seconds or lifecycle.default_timeout_seconds or runner_default
    if lifecycle.max_timeout_seconds is not None:
        timeout = min(timeout, lifecycle.max_timeout_seconds)
    return timeout


def timed_out(status: SessionStatus, timeout: int, now: datetime) -> bool:
    """Whether the work has run longer than the timeout (counted from the first runner
    Job, across retries) plus a grace for the Job's own deadline to fire first."""
    started = first_entry_time(status, HistoryEvent.WORKLOAD_CREATED)
    return started is not None and now >= started + timedelta(
        seconds=timeout + TIMEOUT_GRACE_SECONDS
    )


def approval_expired(status: SessionStatus, lifecycle: LifecyclePolicy, now: datetime) -> bool:
    """Whether the Session has waited for approval longer than the policy allows."""
    limit = lifecycle.approval_timeout_seconds
    since = first_entry_time(status, HistoryEvent.AWAITING_APPROVAL)
    return limit is not None and since is not None and now >= since + timedelta(seconds=limit)


def next_deadline(
    status: SessionStatus, lifecycle: LifecyclePolicy, timeout: int
) -> datetime | None:
    """When the Session must be looked at again even if nothing changes (a timeout or an
    approval expiry); None when no deadline applies."""
    if status.phase in TERMINAL_PHASES:
        return None
    if status.reason == "AwaitingApproval" and lifecycle.approval_timeout_seconds:
        since = first_entry_time(status, HistoryEvent.AWAITING_APPROVAL)
        if since is not None:
            return since + timedelta(seconds=lifecycle.approval_timeout_seconds)
    started = first_entry_time(status, HistoryEvent.WORKLOAD_CREATED)
    if started is not None:
        return started + timedelta(seconds=timeout + TIMEOUT_GRACE_SECONDS)
    return None


# --- retries ------------------------------------------------------------------------------


@dataclass(frozen=True)
class AttemptFailure:
    """Why an attempt failed, and whether another attempt may fix it."""

    reason: str
    message: str
    retryable: bool


def attempt_failure(
    job: JobView, pod: PodView | None, retry: RetryPolicy, now: datetime
) -> AttemptFailure | None:
    """Classify a failed (or hopelessly stuck) attempt; None while it is neither.

    Retryable: the pod was evicted or its node lost, the runner was OOM-killed, the image
    pull is stuck past the grace period, the pod vanished, or the runner exited with a
    code the policy lists. A runner's own non-zero exit and a timeout are final."""
    term = pod.termination if pod else None
    if job.failed:
        if job.failure_reason == "DeadlineExceeded":
            return AttemptFailure("TimedOut", "the runner did not finish in time", False)
        if pod is None:
            return AttemptFailure("PodLost", "the runner pod disappeared", True)
        if pod.reason in INFRASTRUCTURE_REASONS:
            return AttemptFailure(pod.reason, f"pod {pod.name}: {pod.reason}", True)
        if term is not None and term.reason == "OOMKilled":
            return AttemptFailure(
                "OOMKilled", f"pod {pod.name}: the runner ran out of memory", True
            )
        if term is not None and term.exit_code != 0:
            return AttemptFailure(
                "Error",
                f"runner exited with code {term.exit_code}",
                term.exit_code in retry.retry_on_exit_codes,
            )
        return AttemptFailure(job.failure_reason or "JobFailed", job.failure_message, False)
    if pod is not None and pod.waiting_reason in PULL_WAITING:
        created = parse_or_none(pod.created)
        grace = timedelta(seconds=retry.image_pull_grace_seconds)
        if created is not None and now >= created + grace:
            message = f"pod {pod.name}: {pod.waiting_reason} for over {grace.seconds}s"
            return AttemptFailure("ImagePullBackOff", message, True)
    return None


def correlation_id(session: Session, attempt: int) -> str:
    """Ties an attempt's history entries, Job and audit records together."""
    return f"{session.metadata.uid}/a{attempt}"


# --- the queue ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Admission:
    """The concurrency cap's answer for one Session."""

    admitted: bool
    position: int = 0
    """1-based place among those still waiting when not admitted."""
    waiting: int = 0
    """How many Sessions wait beyond the free slots."""


def fifo_key(body: dict[str, Any]) -> tuple[str, str]:
    """First in, first out: by creationTimestamp, then name (timestamps have seconds)."""
    meta = body.get("metadata", {})
    return (meta.get("creationTimestamp") or "", meta.get("name", ""))


def wants_job(body: dict[str, Any]) -> bool:
    """Whether a Session (as the index holds it, without a live Job) waits for a slot:
    not finished, not cancelled, and not held back by approval."""
    status = body.get("status") or {}
    if status.get("phase") in {p.value for p in TERMINAL_PHASES}:
        return False
    spec = body.get("spec") or {}
    if spec.get("cancel"):
        return False
    if status.get("reason") == "AwaitingApproval":
        return False
    approval = (spec.get("policy") or {}).get("approvalRequired", False)
    annotations = (body.get("metadata") or {}).get("annotations") or {}
    return not approval or bool(annotations.get(naming.ANNOTATION_APPROVED_BY, "").strip())


def admit(
    me: tuple[str, str], waiting: Iterable[tuple[str, str]], active: int, cap: int
) -> Admission:
    """Whether the Session keyed ``me`` (see ``fifo_key``) may start now.

    ``waiting`` are the keys of the namespace's Sessions that want a Job and have none
    running; ``active`` counts unfinished runner Jobs plus creates in flight. The first
    ``cap - active`` waiting Sessions (FIFO) may start; the rest queue."""
    ordered = sorted(set(waiting) | {me})
    slots = max(cap - active, 0)
    index = ordered.index(me)
    if index < slots:
        return Admission(True)
    return Admission(False, index - slots + 1, len(ordered) - slots)


def heads(waiting: Iterable[tuple[str, str]], active: int, cap: int) -> list[tuple[str, str]]:
    """The waiting Sessions the free slots admit next (to wake them)."""
    return sorted(set(waiting))[: max(cap - active, 0)]


def job_active(job: JobView) -> bool:
    """A Job that counts against the cap: neither complete nor failed."""
    return not job.complete and not job.failed


# --- policy changes -----------------------------------------------------------------------


def violations(
    policy: NamespacePolicy, session: Session, registry: Registry, identity: str, now: datetime
) -> tuple[Violation, ...]:
    """What the namespace's current policy no longer allows an admitted Session: a model
    or tool removed (or blocked), or the month's budget used up."""
    decision = evaluate(policy, session, UserInfo(identity), None, registry, now=now)
    found = [v for v in decision.violations if v.code in ONGOING_CODES]
    budget = policy.spec.models.budget
    if budget is not None and budget_exhausted(policy, now):
        found.append(
            Violation(
                Code.BUDGET_EXCEEDED,
                "spec.policy.modelConstraints.budget",
                f"namespace {session.metadata.namespace} has spent or reserved more than "
                f"its monthly budget ({budget.monthly} {budget.currency}, charged "
                f"{policy.status.month_to_date_spend} {budget.currency})",
            )
        )
    return tuple(found)


def refusals(
    policy: NamespacePolicy, session: Session, registry: Registry, identity: str, now: datetime
) -> tuple[Violation, ...]:
    """Every rule of ``common.policy`` the Session breaks, checked before its runner
    starts (an unknown framework is the planner's own case). What is left of the monthly
    budget is not one of them here: the spend ledger already charges this Session its own
    budget, and the gate holds it Queued until its budget fits beside the others
    (``capacity``), so counting it again would refuse every Session reserved in time."""
    decision = evaluate(policy, session, UserInfo(identity), None, registry, now=now)
    left_to_the_gate = (Code.UNKNOWN_FRAMEWORK, Code.BUDGET_EXCEEDED)
    return tuple(v for v in decision.violations if v.code not in left_to_the_gate)


def no_policy(session: Session) -> Violation:
    """Why a Session is refused where a NamespacePolicy is required and there is none."""
    return Violation(
        Code.NO_POLICY,
        "metadata.namespace",
        f"namespace {session.metadata.namespace} has no NamespacePolicy, and this operator "
        "starts runners only where one governs: ask a platform admin to create one",
    )


def stops(context: Context) -> bool:
    """Whether the policy's violations end the Session (else they only flag it)."""
    return bool(context.violations) and context.lifecycle.on_violation == ViolationAction.STOP


def budget_exhausted(policy: NamespacePolicy, now: datetime) -> bool:
    """Whether the namespace's ledger charges more than its monthly budget this month.
    Equal is not more: the gate lets a Session reserve exactly what is left, and its
    reservation alone must not stop it."""
    budget = policy.spec.models.budget
    status = policy.status
    month = now.astimezone(UTC).strftime("%Y-%m")
    if budget is None or status.month != month:
        return False
    return money(status.month_to_date_spend) > money(budget.monthly)


def policy_signature(policy: NamespacePolicy | None, now: datetime) -> tuple[int, bool] | None:
    """What admitted Sessions depend on in a NamespacePolicy: its spec (generation) and
    whether the budget is spent. Status-only updates (usage roll-ups) that change neither
    need no re-plan of the namespace's Sessions."""
    if policy is None:
        return None
    return (policy.metadata.generation, budget_exhausted(policy, now))
