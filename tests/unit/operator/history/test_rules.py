"""History archival decisions: when, how much, the object's bytes, the status after."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from ambient.crds.digests import sha256_hex
from ambient.crds.history import carried, transition_problems
from ambient.crds.models import HistoryEntry, Session, SessionStatus
from ambient.operator.history.rules import (
    ArchivePolicy,
    archive_body,
    archived_status,
    how_many,
    plan_archive,
)
from ambient.operator.sessions import lifecycle
from ambient.operator.sessions.status import StatusEditor

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
POLICY = ArchivePolicy(at_entries=900, batch=500, at_bytes=512 * 1024)


def _session(history: list[HistoryEntry]) -> Session:
    return Session.model_validate(
        {
            "metadata": {"name": "s1", "namespace": "team-alpha", "uid": "u-1"},
            "spec": {
                "trigger": {"source": "manual", "event": "test"},
                "framework": {"type": "script"},
            },
            "status": {"history": [e.model_dump(by_alias=True) for e in history]},
        }
    )


def _entries(n: int, start: int = 0, size: int = 0) -> list[HistoryEntry]:
    out = []
    for i in range(start, start + n):
        eid = {0: "created", 1: "a1/created"}.get(i, f"runner:a1/step-{i}")
        event = {0: "SessionCreated", 1: "WorkloadCreated"}.get(i, "Progress")
        stamp = (NOW + timedelta(seconds=i)).strftime("%Y-%m-%dT%H:%M:%SZ")
        out.append(
            HistoryEntry(seq=i, id=eid, timestamp=stamp, event=event, data={"x": "y" * size})
        )
    return out


def test_nothing_is_due_below_the_threshold() -> None:
    assert how_many(_entries(899), POLICY) == 0
    assert plan_archive(_session(_entries(899)), POLICY, "pfx") is None


def test_at_the_threshold_the_oldest_batch_is_archived() -> None:
    step = plan_archive(_session(_entries(900)), POLICY, "pfx")
    assert step is not None
    assert (step.from_seq, step.to_seq, len(step.entries)) == (0, 499, 500)
    assert step.key == "pfx/team-alpha/s1/u-1/history/0-499.json"
    assert plan_archive(_session(_entries(900)), POLICY, "") is not None
    assert step.key.endswith("/history/0-499.json")  # the layout: common/store/keys.py


def test_large_entries_are_archived_by_size_before_the_count() -> None:
    entries = _entries(100, size=8000)  # ~800 KB of history in 100 entries
    n = how_many(entries, POLICY)
    kept = sum(len(e.model_dump_json(by_alias=True)) for e in entries[n:])
    assert 0 < n < 100 and kept <= POLICY.at_bytes // 2


def test_the_archive_body_is_deterministic_and_holds_exactly_the_entries() -> None:
    session = _session(_entries(900))
    step = plan_archive(session, POLICY, "")
    assert step is not None
    assert archive_body(session, step.entries) == step.body
    doc = json.loads(step.body)
    assert doc["kind"] == "SessionHistoryArchive" and doc["uid"] == "u-1"
    assert [HistoryEntry.model_validate(e) for e in doc["entries"]] == session.status.history[:500]
    assert step.sha256 == sha256_hex(step.body)


def test_the_archived_status_is_a_write_the_rules_allow() -> None:
    session = _session(_entries(900))
    step = plan_archive(session, POLICY, "")
    assert step is not None
    after = archived_status(session.status, step, "s3://b/k.json", NOW)
    assert [a.model_dump(by_alias=True)["fromSeq"] for a in after.history_archives] == [0]
    assert after.history_archives[0].to_seq == 499 and after.history_archives[0].count == 500
    assert after.history[0].seq == 500 and len(after.history) == 401
    marker = after.history[-1]
    assert (marker.seq, marker.event, marker.data["location"]) == (
        900,
        "HistoryArchived",
        "s3://b/k.json",
    )
    assert (
        transition_problems(session.status.history, [], after.history, after.history_archives) == []
    )


def test_the_operators_archived_entries_still_answer_its_questions() -> None:
    session = _session(_entries(900))
    step = plan_archive(session, POLICY, "")
    assert step is not None
    after = archived_status(session.status, step, "s3://b/k.json", NOW)
    assert [c.id for c in carried(after.history)] == ["created", "a1/created"]
    edit = StatusEditor(after, NOW, 1)
    assert edit.has("created") and edit.has("a1/created")
    assert edit.append("created", "SessionCreated") is False  # no duplicate after archival
    assert edit.append("later", "Later") is True
    assert edit.status.history[-1].seq == 901
    assert lifecycle.first_entry_time(after, "WorkloadCreated") == NOW + timedelta(seconds=1)


def test_carried_entries_are_carried_into_the_next_archive() -> None:
    status = SessionStatus.model_validate(_session(_entries(900)).status.model_dump(by_alias=True))
    session = _session([])
    for _ in range(3):
        session = session.model_copy(update={"status": status})
        while len(session.status.history) < 900:
            edit = StatusEditor(session.status, NOW, 1)
            n = len(edit.status.history)
            for _i in range(900 - n):
                edit.append(f"runner:more-{edit.status.history[-1].seq + 1}", "Progress")
            session = session.model_copy(update={"status": edit.status})
        step = plan_archive(session, POLICY, "")
        assert step is not None
        status = archived_status(session.status, step, f"s3://b/{step.from_seq}.json", NOW)
        assert (
            transition_problems(
                session.status.history,
                session.status.history_archives,
                status.history,
                status.history_archives,
            )
            == []
        )
    assert [c.id for c in carried(status.history)] == ["created", "a1/created"]
    assert [a.from_seq for a in status.history_archives] == [0, 500, 1000]


def test_a_history_that_moved_is_not_archived_from_a_stale_plan() -> None:
    session = _session(_entries(900))
    step = plan_archive(session, POLICY, "")
    assert step is not None
    moved = archived_status(session.status, step, "s3://b/k.json", NOW)
    try:
        archived_status(moved, step, "s3://b/k.json", NOW)
    except ValueError as exc:
        assert "plan it again" in str(exc)
    else:
        raise AssertionError("a stale step was applied")
