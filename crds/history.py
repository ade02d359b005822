"""Pure rules of the history window: where it starts, the next seq, what was archived.

``status.history`` holds the newest entries; ``status.historyArchives`` records the runs of
older entries moved to the artifact store. Entries keep their global ``seq``, so the full
trail is the archives (0..toSeq) followed by the window. The operator, the runner library
and the admission webhook all read the window through these functions, so they agree.

When the operator archives, its ``HistoryArchived`` entry carries the id, event and time of
every non-runner entry archived so far (data key ``carried``): the decisions that look an
entry up in history (was the Session approved, when was the first Job created, was this
notification sent) still see it without reading the store.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ambient.crds.events import RUNNER_EVENT_PATTERN, HistoryEvent, is_runner_event
from ambient.crds.models import HistoryArchive, HistoryEntry

RUNNER_PREFIX = "runner:"
CARRIED_KEY = "carried"


def window_start(archives: Sequence[HistoryArchive]) -> int:
    """The seq the window must start at: just after the last archive, or 0."""
    return archives[-1].to_seq + 1 if archives else 0


def next_seq(history: Sequence[HistoryEntry], archives: Sequence[HistoryArchive]) -> int:
    """The seq of the next entry appended (also the number of entries in the trail)."""
    return history[-1].seq + 1 if history else window_start(archives)


def next_seq_raw(status: Mapping[str, Any]) -> int:
    """next_seq over a status as JSON (what the runner library edits)."""
    history = status.get("history") or []
    if history:
        return int(history[-1]["seq"]) + 1
    archives = status.get("historyArchives") or []
    return int(archives[-1]["toSeq"]) + 1 if archives else 0


@dataclass(frozen=True)
class CarriedEntry:
    """An archived entry's id, event and time, kept in the window for decisions."""

    id: str
    event: str
    timestamp: str


def is_runner_entry(entry: HistoryEntry) -> bool:
    """An entry in the runner's id prefix: its claim, never the operator's record."""
    return entry.id.startswith(RUNNER_PREFIX)


def operator_entries(history: Sequence[HistoryEntry]) -> list[HistoryEntry]:
    """The window without the runner's entries: what the operator's decisions read, so an
    entry a runner forged in the operator's vocabulary changes none of them (issue 17,
    finding 7; the admission webhook refuses such entries in the first place)."""
    return [e for e in history if not is_runner_entry(e)]


def carried(history: Sequence[HistoryEntry]) -> list[CarriedEntry]:
    """What the newest HistoryArchived entry in the window carries (oldest first); only the
    operator's own HistoryArchived entries count."""
    for entry in reversed(operator_entries(history)):
        if entry.event == HistoryEvent.HISTORY_ARCHIVED:
            return decode_carried(entry.data.get(CARRIED_KEY, ""))
    return []


def decode_carried(text: str) -> list[CarriedEntry]:
    """The carried list as the operator wrote it; anything unreadable carries nothing."""
    try:
        rows = json.loads(text) if text else []
    except ValueError:
        return []
    if not isinstance(rows, list):
        return []
    return [
        CarriedEntry(str(r[0]), str(r[1]), str(r[2]))
        for r in rows
        if isinstance(r, list) and len(r) == 3
    ]


def encode_carried(entries: Sequence[CarriedEntry]) -> str:
    """Compact JSON rows [id, event, timestamp]."""
    return json.dumps([[e.id, e.event, e.timestamp] for e in entries], separators=(",", ":"))


def carry_forward(
    history: Sequence[HistoryEntry], archived: Sequence[HistoryEntry]
) -> list[CarriedEntry]:
    """What a new HistoryArchived entry carries: what was carried so far, plus the
    operator's own entries among those being archived (runner entries and earlier
    HistoryArchived entries are in the archive objects only)."""
    out = carried(history)
    seen = {e.id for e in out}
    for entry in archived:
        if entry.id.startswith(RUNNER_PREFIX) or entry.event == HistoryEvent.HISTORY_ARCHIVED:
            continue
        if entry.id not in seen:
            seen.add(entry.id)
            out.append(CarriedEntry(entry.id, entry.event, entry.timestamp))
    return out


def known_ids(history: Sequence[HistoryEntry]) -> set[str]:
    """Ids in the window plus the operator ids archived before it."""
    return {e.id for e in history} | {c.id for c in carried(history)}


def runner_entry_problems(
    old_history: Sequence[HistoryEntry], new_history: Sequence[HistoryEntry]
) -> list[str]:
    """Why the entries a runner appended are not its own to write (empty when they are):
    each must have an id in the runner's prefix and an event of the runner's vocabulary
    (``crds/events.py``: never an operator event such as HistoryArchived or a
    NotificationDelivered). Only the entries past the old window's last seq are checked:
    the append-only rules cover the rest."""
    last = old_history[-1].seq if old_history else -1
    problems = []
    for entry in new_history:
        if entry.seq <= last:
            continue
        if not entry.id.startswith(RUNNER_PREFIX):
            problems.append(
                f"history entry {entry.seq}: a runner's entry ids start with "
                f"{RUNNER_PREFIX!r}; {entry.id[:80]!r} is the operator's to write"
            )
        if not is_runner_event(entry.event):
            problems.append(
                f"history entry {entry.seq}: event {entry.event[:80]!r} is not a runner "
                f"event (the operator's events are its own; a runner's match "
                f"{RUNNER_EVENT_PATTERN})"
            )
    return problems


def transition_problems(
    old_history: Sequence[HistoryEntry],
    old_archives: Sequence[HistoryArchive],
    new_history: Sequence[HistoryEntry],
    new_archives: Sequence[HistoryArchive],
) -> list[str]:
    """Why a status write breaks the append-only trail (empty when it does not).

    Allowed: entries appended at the end with the next seq; and, in one write, one archive
    record appended that starts where the previous one ended, the window's prefix it
    covers dropped, and a HistoryArchived entry naming its location appended. Nothing else.
    """
    if list(new_archives[: len(old_archives)]) != list(old_archives):
        return ["status.historyArchives is append-only: a record cannot be changed or removed"]
    added = list(new_archives[len(old_archives) :])
    if len(added) > 1:
        return ["status.historyArchives grows by one record per write"]
    old_start = window_start(old_archives)
    old_next = next_seq(old_history, old_archives)
    start = old_start
    if added:
        record = added[0]
        if record.from_seq != old_start:
            return [
                f"the new history archive must start at seq {old_start} (where the "
                f"previous one ended), not {record.from_seq}"
            ]
        if record.to_seq < record.from_seq or record.count != record.to_seq - record.from_seq + 1:
            return ["a history archive's count must be toSeq - fromSeq + 1"]
        if record.to_seq >= old_next:
            return [
                f"the new history archive covers seq up to {record.to_seq}, but the history "
                f"only reached {old_next - 1}"
            ]
        start = record.to_seq + 1
    kept = [e for e in old_history if e.seq >= start]
    if added and new_history and new_history[0].seq != start:
        return [
            f"status.history must start at seq {start}, just after the archive in "
            "status.historyArchives: entries cannot be removed unless an archive covers them"
        ]
    if new_history[: len(kept)] != kept:
        new_seqs = {e.seq for e in new_history}
        if len(new_history) < len(kept) or kept[0].seq not in new_seqs:
            return [
                "status.history is append-only: entries cannot be removed unless an archive "
                "in status.historyArchives covers them"
            ]
        for a, b in zip(kept, new_history, strict=False):
            if a != b:
                return [f"status.history is append-only: entry {a.seq} ({a.id}) cannot be changed"]
    for i, entry in enumerate(new_history[len(kept) :], start=old_next):
        if entry.seq != i:
            return [
                f"status.history entries must be numbered in order: entry {i} has seq {entry.seq}"
            ]
    if added:
        location = added[0].location
        if not any(
            e.event == HistoryEvent.HISTORY_ARCHIVED and e.data.get("location") == location
            for e in new_history[len(kept) :]
        ):
            return [
                "archiving history appends a HistoryArchived entry whose data.location names "
                "the archive"
            ]
    return []
