"""What retention says to delete, as of a given moment (pure; time is always passed in).

The operator runs this from one timer over the few NamespacePolicies, not one timer per
Session. ``sweep`` returns a plan that dry-run mode prints and normal mode carries out:
archive each expired Session's history and audit trail first, then delete it. Objects in
the store are read back by the layout in common/store/keys.py, the one their writers use.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from ambient.common.store.keys import key_day
from ambient.crds.models import DURATION_PATTERN, TERMINAL_PHASES, RetentionPolicy, Session
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
) -> Sweep:
    """Everything in ``namespace`` whose retention ran out at ``now``.

    Live Sessions are never deleted, whatever their age. Artifacts of kept Sessions can
    expire on their own (artifacts default to 30 days, Sessions to 90).
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
            if created is not None and now - created >= keep_artifacts:
                result.artifacts.append(
                    ExpiredArtifact(session.metadata.name, artifact.location, created)
                )
    # An audit batch is deleted only when its whole day is past retention.
    for obj in audit_objects:
        if now - (obj.day + timedelta(days=1)) >= keep_audit:
            result.audit_objects.append(obj.key)
    for obj in delivery_objects:
        if now - (obj.day + timedelta(days=1)) >= keep_deliveries:
            result.delivery_objects.append(obj.key)
    return result
