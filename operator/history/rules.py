"""History archival, decided purely: when to move the oldest entries to the store, the
archive object's key (laid out by common/store/keys.history_archive_key) and bytes, and the
status that records the move.

Two steps, each safe to repeat: the archive object is written create-only at a
deterministic key with deterministic bytes (a re-run after a crash finds the same object
and goes on), then one status write appends the archive record, drops the archived
prefix and appends a ``HistoryArchived`` entry. The CEL rules and the admission webhook
allow exactly that write (crds/history.transition_problems).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from ambient.common.store.keys import history_archive_key
from ambient.crds.digests import sha256_hex
from ambient.crds.events import HistoryEvent
from ambient.crds.history import CARRIED_KEY, carry_forward, encode_carried, window_start
from ambient.crds.models import (
    API_VERSION,
    MAX_HISTORY_ARCHIVES,
    MAX_HISTORY_ENTRIES,
    HistoryArchive,
    HistoryEntry,
    Session,
    SessionStatus,
)
from ambient.crds.times import rfc3339

ARCHIVE_KIND = "SessionHistoryArchive"


@dataclass(frozen=True)
class ArchivePolicy:
    """When and how much to archive (OperatorSettings.history_archive_*)."""

    at_entries: int = 300
    """Archive once the window holds this many entries (below the cap of 1,000, so
    writers keep room while the archive is written)."""
    batch: int = 200
    """How many of the oldest entries one archive moves."""
    at_bytes: int = 384 * 1024
    """Archive also once the window's JSON reaches this size (large entries), moving
    enough of the oldest to bring it under half of it."""


@dataclass(frozen=True)
class ArchiveStep:
    """One archive: the entries, where they go, and the exact bytes."""

    entries: tuple[HistoryEntry, ...]
    key: str
    body: bytes

    @property
    def from_seq(self) -> int:
        return self.entries[0].seq

    @property
    def to_seq(self) -> int:
        return self.entries[-1].seq

    @property
    def sha256(self) -> str:
        return sha256_hex(self.body)


def _size(entry: HistoryEntry) -> int:
    return len(entry.model_dump_json(by_alias=True))


def how_many(history: list[HistoryEntry], policy: ArchivePolicy) -> int:
    """How many of the oldest entries to archive now (0: none)."""
    count = policy.batch if len(history) >= policy.at_entries else 0
    sizes = [_size(e) for e in history]
    total = sum(sizes)
    if total >= policy.at_bytes:
        moved = 0
        while moved < len(sizes) and total > policy.at_bytes // 2:
            total -= sizes[moved]
            moved += 1
        count = max(count, moved)
    # Keep at least one entry's room for the HistoryArchived entry; one archive holds at
    # most the cap.
    return max(0, min(count, len(history), MAX_HISTORY_ENTRIES))


def archive_body(session: Session, entries: tuple[HistoryEntry, ...]) -> bytes:
    """Canonical JSON (sorted keys, no timestamps of its own): the same entries always
    give the same bytes, so a repeated write is recognised by its sha256."""
    doc = {
        "apiVersion": API_VERSION,
        "kind": ARCHIVE_KIND,
        "namespace": session.metadata.namespace,
        "session": session.metadata.name,
        "uid": session.metadata.uid,
        "fromSeq": entries[0].seq,
        "toSeq": entries[-1].seq,
        "entries": [e.model_dump(mode="json", by_alias=True) for e in entries],
    }
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


def plan_archive(session: Session, policy: ArchivePolicy, prefix: str) -> ArchiveStep | None:
    """The archive to write now, or None."""
    status = session.status
    if len(status.history_archives) >= MAX_HISTORY_ARCHIVES:
        return None
    n = how_many(status.history, policy)
    if n == 0:
        return None
    entries = tuple(status.history[:n])
    return ArchiveStep(
        entries=entries,
        key=history_archive_key(
            prefix,
            session.metadata.namespace,
            session.metadata.name,
            session.metadata.uid,
            from_seq=entries[0].seq,
            to_seq=entries[-1].seq,
        ),
        body=archive_body(session, entries),
    )


def archived_status(
    status: SessionStatus, step: ArchiveStep, location: str, now: datetime
) -> SessionStatus:
    """The status after the archive: record appended, prefix dropped, entry appended."""
    if window_start(status.history_archives) != step.from_seq or not status.history:
        raise ValueError("the history moved since the archive was planned; plan it again")
    if status.history[: len(step.entries)] != list(step.entries):
        raise ValueError("the history moved since the archive was planned; plan it again")
    out = status.model_copy(deep=True)
    stamp = rfc3339(now)
    record = HistoryArchive(
        from_seq=step.from_seq,
        to_seq=step.to_seq,
        count=len(step.entries),
        location=location,
        sha256=step.sha256,
        archived_at=stamp,
    )
    kept = out.history[len(step.entries) :]
    carried = carry_forward(out.history, step.entries)
    next_seq = kept[-1].seq + 1 if kept else step.to_seq + 1
    entry = HistoryEntry(
        seq=next_seq,
        id=f"history-archived/{step.from_seq}-{step.to_seq}",
        timestamp=stamp,
        event=HistoryEvent.HISTORY_ARCHIVED,
        data={
            "location": location,
            "fromSeq": str(step.from_seq),
            "toSeq": str(step.to_seq),
            "count": str(len(step.entries)),
            "sha256": step.sha256,
            CARRIED_KEY: encode_carried(carried),
        },
    )
    out.history_archives = [*out.history_archives, record]
    out.history = [*kept, entry]
    return out
