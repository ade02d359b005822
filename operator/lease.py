"""Leader election over a ``coordination.k8s.io`` Lease, decided as client-go's
``leaderelection`` package decides it. Pure: the caller reads the Lease and the clock.

Two or more operator replicas run; one holds the Lease and reconciles, the others wait.
Expiry is judged by the waiter's own monotonic clock from the moment it last saw the
record change (never by comparing the holder's ``renewTime`` with its own wall clock), so
clock skew between nodes cannot make two leaders. The holder renews every
``retry_seconds``; if it cannot renew for ``renew_deadline_seconds`` it stops itself, which
is before any waiter may take over (``duration_seconds`` after the last renewal it saw).

Worst case from the holder's death to a new leader: ``duration_seconds`` plus one
``retry_seconds`` (10 s + 2 s by default).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from ambient.crds import times


class Action(StrEnum):
    ACQUIRE = "acquire"
    """Nobody holds it (or the holder's term ran out unseen): take it."""
    RENEW = "renew"
    """We hold it: write a new renewTime."""
    WAIT = "wait"
    """Someone else holds it and was seen renewing within the lease's duration."""


@dataclass(frozen=True, slots=True)
class Timing:
    duration_seconds: float = 10.0
    """How long a holder's term lasts after the last renewal a waiter saw."""
    renew_deadline_seconds: float = 7.0
    """How long the holder keeps trying to renew before it gives up and stops."""
    retry_seconds: float = 2.0
    """How often the holder renews and a waiter looks."""

    def __post_init__(self) -> None:
        if not 0 < self.retry_seconds < self.renew_deadline_seconds < self.duration_seconds:
            raise ValueError(
                "leader election needs 0 < retry < renew deadline < lease duration, got "
                f"{self.retry_seconds}, {self.renew_deadline_seconds}, {self.duration_seconds}"
            )


@dataclass(frozen=True, slots=True)
class Record:
    """The parts of a Lease's spec the election reads."""

    holder: str
    renew_time: str
    transitions: int
    acquire_time: str = ""
    version: str = ""
    """The object's resourceVersion: any write, even one that changed nothing else, shows
    the holder alive."""

    @classmethod
    def of(cls, lease: dict[str, Any] | None) -> Record | None:
        if lease is None:
            return None
        spec = lease.get("spec") or {}
        return cls(
            holder=str(spec.get("holderIdentity") or ""),
            renew_time=str(spec.get("renewTime") or ""),
            transitions=int(spec.get("leaseTransitions") or 0),
            acquire_time=str(spec.get("acquireTime") or ""),
            version=str((lease.get("metadata") or {}).get("resourceVersion") or ""),
        )


def decide(
    record: Record | None,
    me: str,
    *,
    observed_at: float,
    now: float,
    timing: Timing,
) -> Action:
    """What to do now. ``observed_at``: when (monotonic) this process first saw ``record``
    as it is; ``now``: the monotonic time."""
    if record is None or not record.holder:
        return Action.ACQUIRE
    if record.holder == me:
        return Action.RENEW
    if now - observed_at >= timing.duration_seconds:
        return Action.ACQUIRE
    return Action.WAIT


def spec(
    me: str, record: Record | None, moment: datetime, timing: Timing, *, release: bool = False
) -> dict[str, Any]:
    """The Lease spec to write: ours (acquired now or renewed), or given up (``release``:
    no holder and a one-second term, so a waiter takes over at its next look)."""
    stamp = times.rfc3339_micro(moment)
    held = record is not None and record.holder == me
    transitions = (record.transitions if record else 0) + (0 if held or release else 1)
    return {
        "holderIdentity": "" if release else me,
        "leaseDurationSeconds": 1 if release else max(1, round(timing.duration_seconds)),
        "acquireTime": record.acquire_time if held and record and record.acquire_time else stamp,
        "renewTime": stamp,
        "leaseTransitions": transitions,
    }
