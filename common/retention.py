"""What retention says to delete, as of a given moment (pure; time is always passed in).

The operator runs this from one timer over the few NamespacePolicies, not one timer per
Session. ``sweep`` returns a plan that dry-run mode prints and normal mode carries out:
archive each expired Session's history and audit trail first, then delete it. Objects in
the store are read back by the layout in common/store/keys.py, the one their writers use.

A Session's ``status.artifacts`` is written by its runner, which runs code an agent chose:
an expired artifact is deleted only when its location is a plain key in the operator's
bucket under that Session's own ``<prefix>/<namespace>/<session>/`` folder (``own_key``).
Anything else it names is refused, kept, and reported, so no Session reaches another
tenant's objects (or its own archives, audit batches and payloads) through retention.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from ambient.common.store import keys
from ambient.common.store.keys import key_day
from ambient.crds.models import (
    DURATION_PATTERN,
    TERMINAL_PHASES,
    RetentionPolicy,
    Session,
    StorageType,
)
from ambient.crds.times import parse_or_none

_UNITS = {"h": timedelta(hours=1), "d": timedelta(days=1), "w": timedelta(weeks=1)}


def parse_duration(value: str) -> timedelta:
    """``90d``, ``12h``, ``2w``, ``7y`` (a year is 365 days: retention errs long, not short)."""
    if not re.fullmatch(DURATION_PATTERN, value):
        raise ValueError(
            f"invalid duration {value!r}: use a number and a unit h, d, w or y, e.g. 90d or 7y"
        )
    number, unit = int(value[:-1]), value[-1]
    return number * (timedelta(days=365) if unit == "y" else _UNITS[unit])


def finished_at(session: Session) -> datetime | None:
    """When a finished Session finished; None while it is still live.

    Older Sessions may lack completionTime: the last history entry stands in, so a
    Session is never kept forever for want of one field.
    """
    if session.status.phase not in TERMINAL_PHASES:
        return None
    moment = parse_or_none(session.status.completion_time)
    if moment is None and session.status.history:
        moment = parse_or_none(session.status.history[-1].timestamp)
    return moment or parse_or_none(session.metadata.creation_timestamp)


@dataclass(frozen=True)
class ExpiredArtifact:
    """An artifact a Session generated that has outlived its retention."""

    session: str
    location: str
    created_at: datetime
    key: str
    """The location's key in the operator's bucket, under the Session's own folder."""


@dataclass(frozen=True)
class Store:
    """The operator's artifact store as retention sees it: one bucket, one key prefix."""

    bucket: str
    prefix: str = ""


class NotOwnError(ValueError):
    """An artifact location a Session may not have retention delete (the message says why)."""


def own_roots(namespace: str, session: Session, prefix: str) -> list[str]:
    """The folders a Session's artifacts may lie in: ``<prefix>/<namespace>/<session>/``
    and, for an s3 location the Session chose itself inside its namespace's folder
    ``<prefix>/<namespace>/``, ``<that location>/<namespace>/<session>/`` (the runner
    writes there, runners/sdk/artifacts.py). The bucket is checked by ``own_key``."""
    name = session.metadata.name
    roots = [keys.artifact_prefix(prefix, namespace, name)]
    storage = session.spec.artifacts.storage
    if storage.type is StorageType.S3 and storage.location:
        chosen = storage.location.removeprefix("s3://").partition("/")[2].strip("/")
        area = keys.artifact_key(prefix, namespace, "", "")
        if chosen == area or chosen.startswith(area + "/"):
            roots.append(keys.artifact_prefix(chosen, namespace, name))
    return roots


def own_key(location: str, namespace: str, session: Session, store: Store) -> str:
    """The key of an artifact ``location`` that retention may delete for ``session``;
    NotOwnError when it is not an s3:// location in the store's bucket, not under one of
    the Session's own folders, or laid out as anything but an artifact."""
    split = keys.split_location(location)
    if split is None:
        raise NotOwnError("not an s3:// location")
    bucket, key = split
    if bucket != store.bucket:
        raise NotOwnError(f"in bucket {bucket!r}, not the operator's")
    kind = keys.layout_of(store.prefix, key)
    if kind is not None:
        raise NotOwnError(f"{kind}, not an artifact")
    roots = own_roots(namespace, session, store.prefix)
    if not any(key.startswith(root) and len(key) > len(root) for root in roots):
        raise NotOwnError(f"outside the Session's own folder {roots[0]}")
    return key


@dataclass(frozen=True)
class AuditObject:
    """A dated object in the store (an audit batch, a delivery request), named by
    namespace and day."""

    key: str
    day: datetime


def dated_objects(keys: Iterable[str]) -> list[AuditObject]:
    """The dated objects among listed keys, with the day read from each key
    (common/store/keys.day_prefix); a key without one is not ours and is left alone."""
    found = []
    for key in keys:
        day = key_day(key)
        if day is not None:
            found.append(AuditObject(key, datetime(day.year, day.month, day.day, tzinfo=UTC)))
    return found


@dataclass
class Sweep:
    """What one namespace's retention run deletes (or, in dry-run, would delete)."""

    namespace: str
    now: datetime
    sessions: list[str] = field(default_factory=list)
    artifacts: list[ExpiredArtifact] = field(default_factory=list)
    refused: dict[str, str] = field(default_factory=dict)
    """Expired artifact locations that are kept because retention may not delete them,
    and why (see ``own_key``)."""
    audit_objects: list[str] = field(default_factory=list)
    delivery_objects: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.sessions or self.artifacts or self.audit_objects or self.delivery_objects)

    def report(self) -> dict[str, object]:
        """A JSON-able summary for dry-run output and the audit log."""
        return {
            "namespace": self.namespace,
            "asOf": self.now.isoformat(),
            "sessions": sorted(self.sessions),
            "artifacts": sorted(a.location for a in self.artifacts),
            "refusedArtifacts": dict(sorted(self.refused.items())),
            "auditObjects": sorted(self.audit_objects),
            "deliveryObjects": sorted(self.delivery_objects),
        }


def sweep(
    namespace: str,
    retention: RetentionPolicy,
    sessions: Iterable[Session],
    audit_objects: Iterable[AuditObject],
    now: datetime,
    *,
    delivery_objects: Iterable[AuditObject] = (),
    store: Store | None = None,
) -> Sweep:
    """Everything in ``namespace`` whose retention ran out at ``now``.

    Live Sessions are never deleted, whatever their age. Artifacts of kept Sessions can
    expire on their own (artifacts default to 30 days, Sessions to 90). An expired
    artifact is in ``artifacts`` only when it lies in ``store`` under the Session's own
    folder, else in ``refused``. Its age is the runner's ``createdAt``, which can then
    only hasten the deletion of that Session's own artifacts.
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    keep_sessions = parse_duration(retention.sessions)
    keep_artifacts = parse_duration(retention.artifacts)
    keep_audit = parse_duration(retention.audit_logs)
    keep_deliveries = parse_duration(retention.deliveries)
    result = Sweep(namespace, now)
    for session in sessions:
        done = finished_at(session)
        if done is not None and now - done >= keep_sessions:
            result.sessions.append(session.metadata.name)
        for artifact in session.status.artifacts.generated:
            created = parse_or_none(artifact.created_at)
            if created is None or now - created < keep_artifacts:
                continue
            try:
                if store is None:
                    raise NotOwnError("no artifact store configured")
                key = own_key(artifact.location, namespace, session, store)
            except NotOwnError as exc:
                result.refused[artifact.location] = f"Session {session.metadata.name}: {exc}"
                continue
            result.artifacts.append(
                ExpiredArtifact(session.metadata.name, artifact.location, created, key)
            )
    # An audit batch is deleted only when its whole day is past retention.
    for obj in audit_objects:
        if now - (obj.day + timedelta(days=1)) >= keep_audit:
            result.audit_objects.append(obj.key)
    for obj in delivery_objects:
        if now - (obj.day + timedelta(days=1)) >= keep_deliveries:
            result.delivery_objects.append(obj.key)
    return result
