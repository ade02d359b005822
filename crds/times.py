"""Time as the API writes it: parse ISO 8601 / RFC 3339 into aware UTC datetimes, and
format a moment as the API server does. Pure: no clock is read here, the moment is given.

One rule for every reader: a time that names no zone is UTC (Kubernetes and this project
only ever write UTC), so no datetime here is naive and any two can be compared.
"""

from __future__ import annotations

from datetime import UTC, datetime


def parse(value: str) -> datetime:
    """An ISO 8601 time (``2026-03-01T12:00:00Z``, with an offset, fractions, or a bare
    date) as an aware datetime in UTC; ValueError when it is not one."""
    moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def parse_or_none(value: str | None) -> datetime | None:
    """``parse``, or None for an empty or unreadable value (a stored field may be either)."""
    if not value:
        return None
    try:
        return parse(value)
    except ValueError:
        return None


def rfc3339(moment: datetime) -> str:
    """Seconds precision in UTC with a ``Z``, as the API server writes metav1.Time
    (a naive moment is taken as UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def rfc3339_micro(moment: datetime) -> str:
    """Microseconds precision in UTC with a ``Z``, as the API server writes metav1.MicroTime
    (a Lease's acquireTime and renewTime)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
