"""Audit records exported to the artifact store, batched, one new object per flush.

Objects are append-only: each flush writes new keys (never rewrites one), named
``<prefix>/audit/<namespace>/<YYYY>/<MM>/<DD>/<first-record-time>-<batch>.jsonl``
(common/store/keys.py) so a namespace's trail for a time range is a prefix listing, and
retention can delete whole days. The records outlive the Sessions they describe.
"""

from __future__ import annotations

import json
import logging
import threading
import uuid
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, Protocol

from ambient.common.store.keys import audit_batch_key, day_prefix
from ambient.crds import times

log = logging.getLogger(__name__)


class ObjectStore(Protocol):
    """The little the exporter needs from S3 (or anything like it)."""

    def put_new(self, key: str, body: bytes) -> None:
        """Write ``key``; fail if it exists (append-only)."""

    def list_keys(self, prefix: str) -> list[str]:
        """Keys under ``prefix``, in lexical order."""

    def get(self, key: str) -> bytes:
        """The object's bytes."""


def record_day(record: dict[str, Any]) -> date:
    """The UTC day a record belongs to (its own timestamp, not the flush time)."""
    return times.parse(str(record["timestamp"])).date()


def group(records: Iterable[dict[str, Any]]) -> dict[tuple[str, date], list[dict[str, Any]]]:
    """Records by (namespace, day), each list in timestamp order."""
    groups: dict[tuple[str, date], list[dict[str, Any]]] = defaultdict(list)
    for record in records:
        groups[(str(record.get("namespace") or "_cluster"), record_day(record))].append(record)
    for batch in groups.values():
        batch.sort(key=lambda r: str(r["timestamp"]))
    return dict(groups)


def encode(batch: list[dict[str, Any]]) -> bytes:
    return b"".join(json.dumps(r, sort_keys=True).encode() + b"\n" for r in batch)


@dataclass
class AuditExporter:
    """Buffers records and writes them out in batches (flush on size or on a timer)."""

    store: ObjectStore
    prefix: str = ""
    max_buffer: int = 500
    max_pending: int | None = None
    """Records held (unwritten, including ones a failed flush kept) past which
    ``backlogged`` is true: the webhooks then refuse new work loudly instead of buffering
    without limit while the store is down (issue 17, finding 9). Nothing already taken is
    dropped. None: no limit (the operator, whose records come from its own writes)."""

    def __post_init__(self) -> None:
        self._buffer: list[dict[str, Any]] = []
        # add() runs on request threads of the webhooks while a flush thread swaps the buffer.
        self._lock = threading.Lock()
        self._flushing = threading.Lock()
        self.records_written = 0
        """Records written so far (for the exported-records counter)."""

    @property
    def pending(self) -> int:
        """Records buffered and not yet written."""
        with self._lock:
            return len(self._buffer)

    @property
    def backlogged(self) -> bool:
        """At or past ``max_pending``: the store has not taken records for a while."""
        return self.max_pending is not None and self.pending >= self.max_pending

    def add(self, record: dict[str, Any]) -> bool:
        """Buffer one record; True when the buffer is full and should be flushed now."""
        with self._lock:
            self._buffer.append(record)
            return len(self._buffer) >= self.max_buffer

    def flush(self) -> list[str]:
        """Write what is buffered; on a store error the records stay buffered for next time."""
        with self._flushing:
            with self._lock:
                records, self._buffer = self._buffer, []
            written: list[str] = []
            try:
                for (namespace, day), batch in group(records).items():
                    key = audit_batch_key(
                        self.prefix,
                        namespace,
                        day,
                        str(batch[0]["timestamp"]),
                        uuid.uuid4().hex[:12],
                    )
                    self.store.put_new(key, encode(batch))
                    written.append(key)
                    self.records_written += len(batch)
                    done = {id(r) for r in batch}
                    records = [r for r in records if id(r) not in done]
            except Exception:
                log.exception(
                    "audit export failed; %d records kept for the next flush", len(records)
                )
                with self._lock:
                    self._buffer = records + self._buffer
            return written


def _session_names(record: dict[str, Any]) -> tuple[str, str]:
    """A Session is found by its uid (sessionId) or by its name (in resource)."""
    resource = str(record.get("resource", ""))
    return (str(record.get("sessionId", "")), resource.removeprefix("sessions/"))


def read_trail(
    store: ObjectStore,
    prefix: str,
    namespace: str,
    *,
    since: datetime,
    until: datetime,
    session: str | None = None,
) -> Iterator[dict[str, Any]]:
    """A namespace's records in [since, until), optionally one Session's, oldest first."""
    if since.tzinfo is None or until.tzinfo is None:
        raise ValueError("since and until must be timezone-aware")
    day = since.astimezone(UTC).date()
    last = until.astimezone(UTC).date()
    records: list[dict[str, Any]] = []
    while day <= last:
        for key in store.list_keys(day_prefix(prefix, namespace, day)):
            for line in store.get(key).splitlines():
                record = json.loads(line)
                moment = times.parse(str(record["timestamp"]))
                if not since <= moment < until:
                    continue
                if session is not None and session not in _session_names(record):
                    continue
                records.append(record)
        day = date.fromordinal(day.toordinal() + 1)
    yield from sorted(records, key=lambda r: str(r["timestamp"]))
