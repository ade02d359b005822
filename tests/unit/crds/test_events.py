"""The history event vocabulary: stored strings unchanged, the warning and Event sets."""

from __future__ import annotations

import json

from ambient.crds import events
from ambient.crds.events import KUBERNETES_EVENTS, WARNING_EVENTS, HistoryEvent
from ambient.crds.models import HistoryEntry


def test_members_are_the_strings_already_stored() -> None:
    assert HistoryEvent.WORKLOAD_CREATED == "WorkloadCreated"
    assert HistoryEvent("HistoryArchived") is HistoryEvent.HISTORY_ARCHIVED
    assert all(e.value == e for e in HistoryEvent)
    entry = HistoryEntry(seq=0, id="created", timestamp="t", event=HistoryEvent.SESSION_CREATED)
    assert json.loads(entry.model_dump_json())["event"] == "SessionCreated"


def test_every_warning_becomes_a_kubernetes_event_of_type_warning() -> None:
    assert WARNING_EVENTS < KUBERNETES_EVENTS
    for event in WARNING_EVENTS:
        assert events.kubernetes_event_type(event) == "Warning"
        assert events.audit_outcome(event) == "failure"
        assert events.becomes_kubernetes_event(event)


def test_milestones_are_normal_events_and_the_rest_stay_in_history() -> None:
    normal = KUBERNETES_EVENTS - WARNING_EVENTS
    assert normal == {
        HistoryEvent.WORKLOAD_SUCCEEDED,
        HistoryEvent.AWAITING_APPROVAL,
        HistoryEvent.APPROVED,
    }
    assert all(events.kubernetes_event_type(e) == "Normal" for e in normal)
    for quiet in (
        HistoryEvent.SESSION_CREATED,
        HistoryEvent.QUEUED,
        HistoryEvent.WORKLOAD_CREATED,
        HistoryEvent.WORKLOAD_STARTED,
        HistoryEvent.HISTORY_ARCHIVED,
        HistoryEvent.NOTIFICATION_DELIVERED,
    ):
        assert not events.becomes_kubernetes_event(quiet)
        assert events.audit_outcome(quiet) == "success"


def test_plain_strings_are_looked_up_too() -> None:
    """Stored entries are read back as str: the sets answer for them as for members."""
    assert events.is_warning("TimedOut")
    assert events.becomes_kubernetes_event("Approved")
    assert not events.becomes_kubernetes_event("ScriptStarted")  # a runner's own event
