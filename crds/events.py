"""The history event vocabulary: every event the operator writes into ``status.history``.

One name per event, and the two sets a reader of the history needs: which events are
warnings (the Session went wrong or was stopped) and which also become Kubernetes Events
(what a person running ``kubectl describe session`` wants to see). Every entry the operator
writes is an audit record; only ``KUBERNETES_EVENTS`` cost an extra API write each.

The values are the strings already stored in Sessions' histories: a member compares and
serialises as its string, so stored history reads the same. Runner entries (ids
``runner:...``) carry the runner's own event names and are not in this vocabulary.
"""

from __future__ import annotations

import re
from enum import StrEnum


class HistoryEvent(StrEnum):
    """The ``event`` of an operator-written history entry."""

    SESSION_CREATED = "SessionCreated"
    FRAMEWORK_UNKNOWN = "FrameworkUnknown"
    AWAITING_APPROVAL = "AwaitingApproval"
    APPROVED = "Approved"
    APPROVAL_EXPIRED = "ApprovalExpired"
    QUEUED = "Queued"
    POLICY_VIOLATION = "PolicyViolation"
    POLICY_VIOLATION_FLAGGED = "PolicyViolationFlagged"
    WORKLOAD_CREATED = "WorkloadCreated"
    WORKLOAD_STARTED = "WorkloadStarted"
    WORKLOAD_SUCCEEDED = "WorkloadSucceeded"
    WORKLOAD_FAILED = "WorkloadFailed"
    WORKLOAD_LOST = "WorkloadLost"
    WORKLOAD_CONFLICT = "WorkloadConflict"
    ATTEMPT_FAILED = "AttemptFailed"
    TIMED_OUT = "TimedOut"
    CANCELLED = "Cancelled"
    HISTORY_ARCHIVED = "HistoryArchived"
    """The operator moved a prefix of the history to the store (crds/history.py)."""
    NOTIFICATION_DELIVERED = "NotificationDelivered"
    NOTIFICATION_FAILED = "NotificationFailed"
    REPLY_ATTEMPTED = "ReplyAttempted"
    """A reply to the Session's source is about to be posted (written before each attempt)."""
    REPLY_SENT = "ReplySent"
    """The reply was posted, or found already posted after a restart (operator/replies)."""
    REPLY_FAILED = "ReplyFailed"
    """The reply could not be posted; the Session's own outcome is unchanged."""
    REPLY_SKIPPED = "ReplySkipped"
    """No reply was posted: the namespace has no credentials for the source."""


WARNING_EVENTS: frozenset[HistoryEvent] = frozenset(
    {
        HistoryEvent.WORKLOAD_FAILED,
        HistoryEvent.FRAMEWORK_UNKNOWN,
        HistoryEvent.WORKLOAD_LOST,
        HistoryEvent.WORKLOAD_CONFLICT,
        HistoryEvent.CANCELLED,
        HistoryEvent.TIMED_OUT,
        HistoryEvent.APPROVAL_EXPIRED,
        HistoryEvent.POLICY_VIOLATION,
        HistoryEvent.POLICY_VIOLATION_FLAGGED,
        HistoryEvent.ATTEMPT_FAILED,
    }
)
"""Events that say the Session went wrong or was stopped: a Kubernetes Event of type
Warning and an audit record with outcome failure."""

KUBERNETES_EVENTS: frozenset[HistoryEvent] = WARNING_EVENTS | {
    HistoryEvent.WORKLOAD_SUCCEEDED,
    HistoryEvent.AWAITING_APPROVAL,
    HistoryEvent.APPROVED,
}
"""Entries that also become Kubernetes Events: every warning, and the milestones a person
waits for (an approval asked and given, the work done). The rest (creation, queueing, the
Job created, a pod starting, archiving, notifications) stay in the status, the history
and the audit trail: each Event is one more write for the API server and etcd, and the
Job's creation already has the Job controller's own Events and the ``WorkloadCreated``
condition."""


def is_warning(event: str) -> bool:
    """Whether an entry's event is a warning (any string: runner events never are)."""
    return event in WARNING_EVENTS


def becomes_kubernetes_event(event: str) -> bool:
    """Whether an entry's event is also posted as a Kubernetes Event."""
    return event in KUBERNETES_EVENTS


def kubernetes_event_type(event: str) -> str:
    """The Kubernetes Event type for an entry: Warning or Normal."""
    return "Warning" if is_warning(event) else "Normal"


def audit_outcome(event: str) -> str:
    """The audit record's outcome for an entry: failure for a warning, else success."""
    return "failure" if is_warning(event) else "success"


class RunnerEvent(StrEnum):
    """The ``event`` of the entries the runner library itself writes (ids ``runner:...``).
    A runner may name its own progress events too (``RUNNER_EVENT_PATTERN``), never one of
    the operator's ``HistoryEvent`` names (issue 17, finding 7)."""

    RUNNER_SUCCEEDED = "RunnerSucceeded"
    """The result (id ``runner:result``): summary, branch, changed files, pull request."""
    RUNNER_FAILED = "RunnerFailed"
    """The runner gave up (id ``runner:failed``): reason and message."""
    SCRIPT_STARTED = "ScriptStarted"
    """The script runner started its command."""
    MODEL_CALLED = "ModelCalled"
    """The claude-code runner called the model: model and token counts."""


RUNNER_EVENT_PATTERN = r"^[A-Z][A-Za-z0-9]{0,63}$"
"""What a runner's event name looks like: CamelCase, at most 64 characters."""

OPERATOR_EVENTS: frozenset[str] = frozenset(e.value for e in HistoryEvent)
"""Names only the operator may write: a runner's entry with one is refused at admission,
and the operator reads its own decisions only from entries outside the runner's prefix."""


def is_runner_event(event: str) -> bool:
    """Whether a runner may write an entry with this event: its shape, and never one of
    the operator's names."""
    return event not in OPERATOR_EVENTS and re.fullmatch(RUNNER_EVENT_PATTERN, event) is not None
