"""StatusEditor: idempotent history, conditions, phases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from ambient.crds.models import (
    MAX_HISTORY_ENTRIES,
    MAX_HISTORY_VALUE,
    ConditionStatus,
    HistoryEntry,
    Phase,
    SessionStatus,
)
from ambient.crds.times import rfc3339
from ambient.operator.sessions.status import StatusEditor

NOW = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


def test_append_is_idempotent_by_id() -> None:
    edit = StatusEditor(SessionStatus(), NOW, 4)
    assert edit.append("created", "SessionCreated", {"source": "github"}) is True
    assert edit.append("created", "SessionCreated", {"source": "other"}) is False
    assert edit.append("j-a1/created", "WorkloadCreated") is True
    assert [(e.seq, e.id, e.event) for e in edit.status.history] == [
        (0, "created", "SessionCreated"),
        (1, "j-a1/created", "WorkloadCreated"),
    ]
    assert edit.status.history[0].data == {"source": "github"}
    assert edit.status.history[0].timestamp == "2026-03-01T12:00:00Z"
    assert edit.added == edit.status.history
    assert edit.has("created") and not edit.has("missing")


def test_append_continues_existing_history() -> None:
    status = SessionStatus(
        history=[HistoryEntry(seq=0, id="created", timestamp="t", event="SessionCreated")]
    )
    edit = StatusEditor(status, NOW, 1)
    assert edit.append("created", "SessionCreated") is False
    assert edit.append("next", "Next") is True
    assert [e.seq for e in edit.status.history] == [0, 1]
    assert [e.id for e in edit.added] == ["next"]


def test_append_drops_empty_values() -> None:
    edit = StatusEditor(SessionStatus(), NOW, 1)
    edit.append("e", "E", {"podName": "p", "deliveryId": "", "exitCode": "0"})
    assert edit.status.history[0].data == {"podName": "p", "exitCode": "0"}


def test_editor_works_on_a_copy() -> None:
    original = SessionStatus()
    edit = StatusEditor(original, NOW, 1)
    edit.append("e", "E")
    edit.condition("Ready", True, "Yes")
    edit.phase(Phase.RUNNING, "Running")
    assert original == SessionStatus()


def test_history_cap_refuses_without_changing_anything() -> None:
    full = SessionStatus(
        history=[
            HistoryEntry(seq=i, id=f"e{i}", timestamp="t", event="E")
            for i in range(MAX_HISTORY_ENTRIES)
        ]
    )
    edit = StatusEditor(full, NOW, 1)
    assert edit.append("one-more", "E") is False
    assert edit.status == full
    assert edit.added == []
    assert len(edit.status.history) == MAX_HISTORY_ENTRIES


def test_condition_transition_time_moves_only_on_flip() -> None:
    edit = StatusEditor(SessionStatus(), NOW, 1)
    edit.condition("WorkloadRunning", True, "PodRunning", "pod p")
    later = StatusEditor(edit.status, NOW + timedelta(minutes=5), 2)
    later.condition("WorkloadRunning", True, "PodRunning", "pod q")
    cond = later.get_condition("WorkloadRunning")
    assert cond is not None
    assert cond.last_transition_time == rfc3339(NOW)
    assert (cond.message, cond.observed_generation) == ("pod q", 2)

    later.condition("WorkloadRunning", False, "Finished")
    cond = later.get_condition("WorkloadRunning")
    assert cond is not None
    assert cond.status == ConditionStatus.FALSE
    assert cond.last_transition_time == rfc3339(NOW + timedelta(minutes=5))
    assert len(later.status.conditions) == 1
    assert later.get_condition("Other") is None


def test_phase_sets_completion_time_once_for_terminal_phases() -> None:
    edit = StatusEditor(SessionStatus(), NOW, 3)
    edit.phase(Phase.RUNNING, "Running", "")
    assert edit.status.completion_time is None
    assert edit.status.model_dump()["message"] is None
    assert edit.status.observed_generation == 3

    edit.phase(Phase.FAILED, "Error", "boom")
    assert (edit.status.phase, edit.status.reason, edit.status.message) == (
        Phase.FAILED,
        "Error",
        "boom",
    )
    assert edit.status.completion_time == rfc3339(NOW)

    again = StatusEditor(edit.status, NOW + timedelta(hours=1), 3)
    again.phase(Phase.FAILED, "Error", "boom")
    assert again.status.completion_time == rfc3339(NOW)


def test_append_cuts_values_to_the_crds_limit() -> None:
    """The API server refuses a longer value, and with it the whole status write."""
    edit = StatusEditor(SessionStatus(), NOW, 1)
    edit.append("failed", "WorkloadFailed", {"message": "m" * (MAX_HISTORY_VALUE + 1)})
    assert edit.status.history[0].data == {"message": "m" * MAX_HISTORY_VALUE}
