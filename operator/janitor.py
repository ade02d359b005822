"""Carries out a retention sweep: archive, then delete (the I/O side of retention.py).

Nothing is deleted that was not archived first: a Session's full object (spec, status and
its history) is written create-only to the store before the delete, and with no store
configured expired Sessions are reported and kept. Dry-run reports and touches nothing.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

import pydantic

from ambient.common import retention
from ambient.common.audit import trail as audit
from ambient.common.audit.export import ObjectStore
from ambient.common.audit.records import record as audit_record
from ambient.common.retention import AuditObject, Sweep
from ambient.common.store import keys
from ambient.crds.models import RetentionPolicy, Session

log = logging.getLogger(__name__)


class SessionApi(Protocol):
    def list_sessions(self, namespace: str) -> list[dict[str, object]]: ...

    def delete_session(self, namespace: str, name: str, uid: str) -> bool: ...


class DeletingStore(ObjectStore, Protocol):
    bucket: str

    def delete(self, key: str) -> None: ...


@dataclass
class Outcome:
    """What a run did, beside what the sweep said."""

    sweep: Sweep
    dry_run: bool
    deleted_sessions: list[str] = field(default_factory=list)
    archived: list[str] = field(default_factory=list)
    deleted_artifacts: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    """What was expired but kept, and why."""


def dated_objects(
    store: ObjectStore | None, prefix: str, namespace: str, kind: str = "audit"
) -> list[AuditObject]:
    """A namespace's dated objects of ``kind`` (audit batches, delivery requests), with the
    day read from the key."""
    if store is None:
        return []
    return retention.dated_objects(store.list_keys(keys.dated_prefix(prefix, namespace, kind)))


def audit_objects(store: ObjectStore | None, prefix: str, namespace: str) -> list[AuditObject]:
    """Exported audit batches of a namespace."""
    return dated_objects(store, prefix, namespace, keys.AUDIT)


def run(
    api: SessionApi,
    store: DeletingStore | None,
    namespace: str,
    policy: RetentionPolicy,
    now: datetime,
    *,
    prefix: str = "",
    dry_run: bool = False,
) -> Outcome:
    """One namespace's retention run as of ``now`` (time is passed in, never read)."""
    found: dict[str, tuple[Session, dict[str, object]]] = {}
    for body in api.list_sessions(namespace):
        try:
            session = Session.model_validate(body)
        except pydantic.ValidationError:
            continue  # unreadable Sessions are never deleted by a sweep
        found[session.metadata.name] = (session, body)
    result = retention.sweep(
        namespace,
        policy,
        (s for s, _ in found.values()),
        audit_objects(store, prefix, namespace),
        now,
        delivery_objects=dated_objects(store, prefix, namespace, keys.DELIVERIES),
        store=retention.Store(store.bucket, prefix) if store is not None else None,
    )
    outcome = Outcome(result, dry_run)
    for location, why in result.refused.items():
        # A runner wrote this location; it is kept, and the audit record below names it.
        log.warning("retention in %s keeps %s: %s", namespace, location, why)
        outcome.skipped[location] = why
    if not dry_run:
        _execute(api, store, found, outcome, prefix)
    audit.emit(
        audit_record(
            namespace=namespace,
            session_id="",
            actor="ambient-operator",
            action="RetentionDryRun" if dry_run else "RetentionRun",
            resource=f"namespacepolicies/{namespace}",
            outcome="success",
            details={**result.report(), "skipped": outcome.skipped},
            trace_id=f"retention/{namespace}/{now.isoformat()}",
            timestamp=now,
        )
    )
    return outcome


def _execute(
    api: SessionApi,
    store: DeletingStore | None,
    found: dict[str, tuple[Session, dict[str, object]]],
    outcome: Outcome,
    prefix: str,
) -> None:
    namespace = outcome.sweep.namespace
    for name in outcome.sweep.sessions:
        if store is None:
            outcome.skipped[name] = "no artifact store configured to archive it first"
            continue
        session, body = found[name]
        key = keys.session_archive_key(prefix, namespace, name, session.metadata.uid)
        try:
            store.put_new(key, json.dumps(body, sort_keys=True).encode())
        except Exception as exc:  # the object may exist from a run that died before delete
            if key not in store.list_keys(key):
                outcome.skipped[name] = f"archive failed: {type(exc).__name__}"
                continue
        outcome.archived.append(key)
        if api.delete_session(namespace, name, session.metadata.uid):
            outcome.deleted_sessions.append(name)
    for artifact in outcome.sweep.artifacts:
        assert store is not None  # the sweep confines artifacts to it (retention.own_key)
        store.delete(artifact.key)
        outcome.deleted_artifacts.append(artifact.location)
    for key in [*outcome.sweep.audit_objects, *outcome.sweep.delivery_objects]:
        assert store is not None  # both were listed from it
        store.delete(key)
