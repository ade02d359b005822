"""The adapter that carries out history archival: the store write, then the status write.

The decisions are history_archive's; this module only does the two writes in order (the
object first, so a status that names an archive always has it in the store) and reports.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import Any

from ambient.common.audit import trail as audit
from ambient.common.audit.records import record as audit_record
from ambient.common.kube.client import ConflictError, Kube
from ambient.common.store.s3 import ContentConflictError, S3Store
from ambient.crds.events import HistoryEvent
from ambient.crds.models import Session
from ambient.operator.history.rules import (
    ArchivePolicy,
    ArchiveStep,
    archived_status,
    plan_archive,
)
from ambient.operator.sessions.status import wire

log = logging.getLogger("ambient.operator.history.archiver")


class Archiver:
    """Archives the oldest history entries of Sessions whose window is full enough."""

    def __init__(
        self, api: Kube, store: S3Store | None, prefix: str, policy: ArchivePolicy, actor: str
    ) -> None:
        self.api, self.store, self.prefix, self.policy, self.actor = (
            api,
            store,
            prefix,
            policy,
            actor,
        )
        # Sessions whose archive key holds other content: archiving them again cannot
        # succeed, and someone has to look (an error and an audit record say so).
        self._stuck: set[str] = set()

    def due(self, session: Session) -> ArchiveStep | None:
        """The archive to write now; None without a store or when nothing is due."""
        if self.store is None or session.metadata.uid in self._stuck:
            return None
        return plan_archive(session, self.policy, self.prefix)

    async def archive(self, session: Session, step: ArchiveStep) -> dict[str, Any] | None:
        """Write the archive object, then the status. Returns the updated Session, or
        None when it changed meanwhile (read it again and plan again). A store that
        cannot be reached raises: the reconcile is retried by the resync loop."""
        assert self.store is not None
        meta = session.metadata
        try:
            written = await asyncio.to_thread(self.store.put_once, step.key, step.body)
        except ContentConflictError as exc:
            self._stuck.add(meta.uid)
            log.error("Session %s/%s: history not archived: %s", meta.namespace, meta.name, exc)
            self._audit(session, step, "failure", {"error": str(exc)})
            return None
        location = self.store.location(step.key)
        try:
            status = archived_status(session.status, step, location, datetime.now(UTC))
        except ValueError:
            return None
        try:
            updated = await asyncio.to_thread(
                self.api.patch_session_status,
                meta.namespace,
                meta.name,
                meta.resource_version,
                wire(session.status),
                wire(status),
            )
        except ConflictError:
            return None
        self._audit(
            session,
            step,
            "success",
            {"location": location, "objectWritten": str(written).lower()},
        )
        return updated

    def _audit(
        self, session: Session, step: ArchiveStep, outcome: str, extra: dict[str, str]
    ) -> None:
        audit.emit(
            audit_record(
                namespace=session.metadata.namespace,
                session_id=session.metadata.uid,
                actor=self.actor,
                action=HistoryEvent.HISTORY_ARCHIVED,
                resource=f"sessions/{session.metadata.name}",
                outcome=outcome,
                details={
                    "fromSeq": str(step.from_seq),
                    "toSeq": str(step.to_seq),
                    "sha256": step.sha256,
                    **extra,
                },
                trace_id=session.spec.trigger.delivery_id or session.metadata.uid,
            )
        )
