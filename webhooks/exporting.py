"""Audit export for the webhooks: the operator's batching exporter on a flush thread.

The ingress and the admission webhook are servers without an asyncio task runner of their
own, so a daemon thread flushes the shared ``AuditExporter`` every few seconds, or at once
when its buffer fills. Records are grouped per namespace and day and written create-only,
exactly as the operator writes its own (common/audit/export.py).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from ambient.common.audit.export import AuditExporter, ObjectStore
from ambient.common.store.s3 import S3Store, StoreSettings

log = logging.getLogger(__name__)


class BackgroundExport:
    """Buffers audit records and writes them to the store from one thread."""

    def __init__(
        self,
        store: ObjectStore,
        prefix: str,
        every: float,
        on_written: Callable[[int], object] | None = None,
        max_pending: int = 50_000,
    ) -> None:
        self.store = store
        self.prefix = prefix
        self.exporter = AuditExporter(store, prefix=prefix, max_pending=max_pending)
        self._every = every
        self.on_written = on_written
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.log_only = 0
        """Records not buffered because the backlog was full (refusals only)."""

    def add(self, record: dict[str, Any]) -> None:
        """Buffer one record (never blocks on the store). Past ``max_pending`` (only the
        records of refusals can get there: new work is refused from 90%) a record is kept
        in the structured log only, which every record also goes to, and counted."""
        if self.exporter.backlogged:
            self.log_only += 1
            log.warning("audit store backlog full: record %s kept in the log only",
                        record.get("traceId", ""))  # fmt: skip
            return
        if self.exporter.add(record):
            self._wake.set()

    @property
    def backlogged(self) -> bool:
        """The store has not taken records for so long that 90% of ``max_pending`` are
        held: the servers refuse new work (503, or a denial) until it has, so nothing they
        took is lost and memory stays bounded (issue 17, finding 9). The last 10% is room
        for the records of work already under way."""
        limit = self.exporter.max_pending
        return limit is not None and self.exporter.pending >= limit * 9 // 10

    def flush(self) -> None:
        before = self.exporter.records_written
        self.exporter.flush()
        if self.on_written is not None and self.exporter.records_written > before:
            self.on_written(self.exporter.records_written - before)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="audit-export", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread; what is buffered is written out first."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        self.flush()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self._every)
            self._wake.clear()
            try:
                self.flush()
            except Exception:  # the exporter keeps failed records; never kill the thread
                log.exception("audit export failed")


def from_environment(
    every: float, on_written: Callable[[int], object] | None = None
) -> BackgroundExport | None:
    """The export configured by AMBIENT_STORE_* (the operator's settings), or None."""
    settings = StoreSettings()
    if not settings.bucket:
        return None
    return BackgroundExport(S3Store.from_settings(settings), settings.prefix, every, on_written)
