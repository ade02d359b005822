"""What the history entries a reconcile wrote announce: Kubernetes Events and audit records.

Every entry is in the history and the audit log; Events (one API write each) mark what a
person watching wants to see. Pure: the controller posts and emits what this returns.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ambient.crds import events
from ambient.crds.events import HistoryEvent
from ambient.crds.models import GROUP, VERSION, HistoryEntry, Session
from ambient.operator.sessions.planner import approver

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
    if not events.becomes_kubernetes_event(entry.event):
        return None
    message = ", ".join(f"{k}={v}" for k, v in sorted(entry.data.items()))
    return KubeEvent(
        type=events.kubernetes_event_type(entry.event),
        reason=entry.event,
        message=message[:EVENT_MESSAGE_LIMIT] or entry.event,
    )


def audit_actor(session: Session, entry: HistoryEntry, identity: str) -> str:
    """Who the audit record names: the approver of an approval, the canceller of a
    cancellation (as the entry says), else the operator itself."""
    if entry.event == HistoryEvent.APPROVED:
        return approver(session) or identity
    if entry.event == HistoryEvent.CANCELLED:
        return entry.data.get("cancelledBy", identity)
    return identity


def audit_outcome(entry: HistoryEntry) -> str:
    """failure for the warning entries, else success."""
    return events.audit_outcome(entry.event)


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
