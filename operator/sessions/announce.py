"""What the history entries a reconcile wrote announce: Kubernetes Events and audit records.

Every entry is in the history and the audit log; Events (one API write each) mark what a
person watching wants to see. Pure: the controller posts and emits what this returns.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ambient.crds.models import GROUP, VERSION, HistoryEntry, Session
from ambient.operator.sessions.planner import WARNING_EVENTS, approver

# History entries that also become Kubernetes Events.
MILESTONES = frozenset(
    {
        "WorkloadCreated",
        "WorkloadSucceeded",
        "WorkloadFailed",
        "FrameworkUnknown",
        "AwaitingApproval",
        "Approved",
        "WorkloadLost",
        "WorkloadConflict",
        "Cancelled",
        "TimedOut",
        "ApprovalExpired",
        "PolicyViolation",
        "PolicyViolationFlagged",
        "AttemptFailed",
    }
)
EVENT_MESSAGE_LIMIT = 1000


@dataclass(frozen=True)
class KubeEvent:
    """A Kubernetes Event about a Session."""

    type: str
    """Normal or Warning."""
    reason: str
    message: str


def session_ref(session: Session) -> dict[str, Any]:
    """What a Kubernetes Event needs to name the Session it is about."""
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Session",
        "metadata": {
            "name": session.metadata.name,
            "namespace": session.metadata.namespace,
            "uid": session.metadata.uid,
        },
    }


def kube_event(entry: HistoryEntry) -> KubeEvent | None:
    """The Event a history entry becomes, or None when it stays in the history only."""
    if entry.event not in MILESTONES:
        return None
    message = ", ".join(f"{k}={v}" for k, v in sorted(entry.data.items()))
    return KubeEvent(
        type="Warning" if entry.event in WARNING_EVENTS else "Normal",
        reason=entry.event,
        message=message[:EVENT_MESSAGE_LIMIT] or entry.event,
    )


def audit_actor(session: Session, entry: HistoryEntry, identity: str) -> str:
    """Who the audit record names: the approver of an approval, the canceller of a
    cancellation (as the entry says), else the operator itself."""
    if entry.event == "Approved":
        return approver(session) or identity
    if entry.event == "Cancelled":
        return entry.data.get("cancelledBy", identity)
    return identity


def audit_outcome(entry: HistoryEntry) -> str:
    """failure for the warning entries, else success."""
    return "failure" if entry.event in WARNING_EVENTS else "success"


def audit_fields(session: Session, entry: HistoryEntry, identity: str) -> Mapping[str, Any]:
    """The audit record's fields for one history entry (``audit.records.record``'s
    keyword arguments, without the time)."""
    return {
        "namespace": session.metadata.namespace,
        "session_id": session.metadata.uid,
        "actor": audit_actor(session, entry, identity),
        "action": entry.event,
        "resource": f"sessions/{session.metadata.name}",
        "outcome": audit_outcome(entry),
        "details": dict(entry.data),
        "trace_id": session.spec.trigger.delivery_id or session.metadata.uid,
    }
