"""The history window's rules: next seq, carried ids, and which transitions are allowed."""

from __future__ import annotations

from typing import Any

import pytest

from ambient.crds.history import (
    CarriedEntry,
    carried,
    decode_carried,
    encode_carried,
    known_ids,
    next_seq,
    next_seq_raw,
    operator_entries,
    runner_entry_problems,
    transition_problems,
    window_start,
)
from ambient.crds.models import HistoryArchive, HistoryEntry

LOC = "s3://b/ns/s/uid/history/0-4.json"


def _e(seq: int, eid: str | None = None, event: str = "E", **data: str) -> HistoryEntry:
    return HistoryEntry(
        seq=seq,
        id=eid or f"runner:e{seq}",
        timestamp="2026-03-10T00:00:00Z",
        event=event,
        data=data,
    )


def _a(from_seq: int, to_seq: int, location: str = LOC) -> HistoryArchive:
    return HistoryArchive(
        from_seq=from_seq,
        to_seq=to_seq,
        count=to_seq - from_seq + 1,
        location=location,
        sha256="a" * 64,
        archived_at="2026-03-10T00:00:00Z",
    )


def _archived(seq: int, location: str = LOC) -> HistoryEntry:
    return _e(seq, f"history-archived/{seq}", "HistoryArchived", location=location)


OLD = [_e(i) for i in range(10)]


def test_window_start_and_next_seq() -> None:
    assert window_start([]) == 0
    assert window_start([_a(0, 4), _a(5, 9)]) == 10
    assert next_seq([], []) == 0
    assert next_seq([], [_a(0, 4)]) == 5
    assert next_seq(OLD[5:], [_a(0, 4)]) == 10
    assert next_seq_raw({"history": [{"seq": 7}]}) == 8
    assert next_seq_raw({"historyArchives": [{"toSeq": 499}]}) == 500
    assert next_seq_raw({}) == 0


def test_carried_entries_round_trip_and_bad_text_carries_nothing() -> None:
    rows = [CarriedEntry("approved", "Approved", "t1"), CarriedEntry("a1/created", "W", "t2")]
    text = encode_carried(rows)
    assert decode_carried(text) == rows
    assert decode_carried("not json") == []
    assert decode_carried('{"a": 1}') == []
    window = [_e(5, "history-archived/0-4", "HistoryArchived", carried=text), _e(6)]
    assert carried(window) == rows
    assert known_ids(window) == {"history-archived/0-4", "runner:e6", "approved", "a1/created"}


def test_appending_is_allowed() -> None:
    assert transition_problems(OLD, [], [*OLD, _e(10)], []) == []


def test_a_legit_archive_step_is_allowed() -> None:
    new = [*OLD[5:], _archived(10)]
    assert transition_problems(OLD, [], new, [_a(0, 4)]) == []
    # The next one starts where the first ended; entries appended alongside are fine too.
    again = [*new[3:], _e(11), _archived(12, "s3://b/x/8-9.json")]
    assert (
        transition_problems(new, [_a(0, 4)], again, [_a(0, 4), _a(5, 7, "s3://b/x/8-9.json")]) == []
    )


def test_archiving_the_whole_window_keeps_the_archived_entry() -> None:
    assert transition_problems(OLD, [], [_archived(10)], [_a(0, 9)]) == []


@pytest.mark.parametrize(
    ("new_history", "new_archives", "message"),
    [
        # Dropping entries without an archive.
        (OLD[5:], [], "cannot be removed unless an archive"),
        ([*OLD[5:], _e(10)], [], "cannot be removed unless an archive"),
        (OLD[:9], [], "cannot be removed"),
        # An archive that does not cover the dropped range.
        ([*OLD[6:], _archived(10)], [_a(0, 4)], "cannot be removed"),
        ([*OLD[4:], _archived(10)], [_a(0, 4)], "cannot be removed"),
        ([*OLD[5:], _archived(10)], [_a(1, 4)], "must start at seq 0"),
        ([_archived(12)], [_a(0, 11)], "only reached 9"),
        # An archive without its HistoryArchived entry.
        (OLD[5:], [_a(0, 4)], "HistoryArchived entry"),
        ([*OLD[5:], _archived(10, "s3://elsewhere")], [_a(0, 4)], "HistoryArchived entry"),
        # Two archives at once.
        ([*OLD[8:], _archived(10)], [_a(0, 4), _a(5, 7)], "one record per write"),
        # Kept entries rewritten while archiving.
        (
            [OLD[5].model_copy(update={"event": "Rewritten"}), *OLD[6:], _archived(10)],
            [_a(0, 4)],
            "entry 5",
        ),
        # Numbering after the kept entries.
        ([*OLD[5:], _e(12)], [_a(0, 4)], "numbered in order"),
    ],
)
def test_refused_transitions(
    new_history: list[HistoryEntry], new_archives: list[HistoryArchive], message: str
) -> None:
    problems = transition_problems(OLD, [], new_history, new_archives)
    assert problems and message in problems[0], problems


def test_an_archive_record_cannot_be_rewritten_or_removed() -> None:
    window = [*OLD[5:], _archived(10)]
    rewritten: dict[str, Any] = {"location": "s3://b/other.json"}
    for archives in ([_a(0, 4).model_copy(update=rewritten)], []):
        problems = transition_problems(window, [_a(0, 4)], window, archives)
        assert problems and "historyArchives is append-only" in problems[0]


# --- the runner's entries are claims (issue 17, finding 7) --------------------------------


def test_a_forged_history_archived_entry_in_the_runner_prefix_carries_nothing() -> None:

    forged = HistoryEntry(
        seq=0,
        id="runner:x",
        timestamp="2026-03-10T00:00:00Z",
        event="HistoryArchived",
        data={"carried": '[["workload-created","WorkloadCreated","2020-01-01T00:00:00Z"]]'},
    )
    assert carried([forged]) == []
    assert known_ids([forged]) == {"runner:x"}
    assert operator_entries([forged]) == []


def test_runner_entry_problems_check_only_what_was_appended() -> None:

    def entry(seq: int, eid: str, event: str) -> HistoryEntry:
        return HistoryEntry(seq=seq, id=eid, timestamp="2026-03-10T00:00:00Z", event=event)

    old = [entry(0, "created", "SessionCreated")]
    assert runner_entry_problems(old, [*old, entry(1, "runner:a", "ScriptStarted")]) == []
    (problem,) = runner_entry_problems(old, [*old, entry(1, "runner:a", "Cancelled")])
    assert "Cancelled" in problem
    assert len(runner_entry_problems(old, [*old, entry(1, "approved", "Approved")])) == 2
