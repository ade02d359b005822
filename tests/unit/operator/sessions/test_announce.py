"""Which history entries become Kubernetes Events, and what the audit records say (pure)."""

from __future__ import annotations

from collections.abc import Callable

from ambient.crds import events, naming
from ambient.crds.models import HistoryEntry, Session
from ambient.operator.sessions import announce


def _entry(event: str, **data: str) -> HistoryEntry:
    return HistoryEntry.model_validate(
        {
            "id": f"x-{event}",
            "seq": 1,
            "event": event,
            "timestamp": "2026-03-01T12:00:00Z",
            "data": data,
        }
    )


def test_milestones_become_events_with_their_severity() -> None:
    done = announce.kube_event(_entry("WorkloadSucceeded", job="j", attempt="1"))
    assert done == announce.KubeEvent("Normal", "WorkloadSucceeded", "attempt=1, job=j")
    assert announce.kube_event(_entry("WorkloadCreated", job="j")) is None  # its condition
    failed = announce.kube_event(_entry("WorkloadFailed"))
    assert failed == announce.KubeEvent("Warning", "WorkloadFailed", "WorkloadFailed")
    assert announce.kube_event(_entry("WorkloadRunning")) is None
    assert announce.kube_event(_entry("SessionCreated")) is None
    long = announce.kube_event(_entry("TimedOut", message="x" * 5000))
    assert long is not None and len(long.message) == announce.EVENT_MESSAGE_LIMIT


def test_every_warning_becomes_a_warning_event() -> None:
    for event in events.WARNING_EVENTS:
        announced = announce.kube_event(_entry(event))
        assert announced is not None and announced.type == "Warning"


def test_the_audit_actor(make_session: Callable[..., Session]) -> None:
    session = make_session(annotations={naming.ANNOTATION_APPROVED_BY: "alice"})
    assert announce.audit_actor(session, _entry("Approved"), "op") == "alice"
    assert announce.audit_actor(make_session(), _entry("Approved"), "op") == "op"
    cancelled = _entry("Cancelled", cancelledBy="bob")
    assert announce.audit_actor(session, cancelled, "op") == "bob"
    assert announce.audit_actor(session, _entry("Cancelled"), "op") == "op"
    assert announce.audit_actor(session, _entry("WorkloadCreated"), "op") == "op"


def test_audit_fields(make_session: Callable[..., Session]) -> None:
    session = make_session()
    fields = announce.audit_fields(session, _entry("TimedOut", after="60"), "op")
    assert fields == {
        "namespace": "team-alpha",
        "session_id": session.metadata.uid,
        "actor": "op",
        "action": "TimedOut",
        "resource": "sessions/review-pr-42",
        "outcome": "failure",
        "details": {"after": "60"},
        "trace_id": "d-1",
    }
    assert announce.audit_outcome(_entry("WorkloadSucceeded")) == "success"
    no_delivery = make_session(delivery_id=None)
    assert announce.audit_fields(no_delivery, _entry("X"), "op")["trace_id"] == (
        no_delivery.metadata.uid
    )


def test_session_ref(make_session: Callable[..., Session]) -> None:
    ref = announce.session_ref(make_session())
    assert ref["kind"] == "Session"
    assert ref["metadata"]["name"] == "review-pr-42"
