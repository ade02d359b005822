"""Which operator shard owns a namespace, and when a shard may reconcile. Pure: the caller
reads the shard map, the shards' Leases and the clock.

A namespace is owned by ``owner(namespace, count)``: a jump consistent hash (Lamping and
Veach, 2014) of the SHA-256 of its name, so every namespace has exactly one owner in
``0 .. count - 1`` whatever the count, with no labels to keep and none to forget on a new
namespace. Growing from ``n`` to ``n + 1`` shards moves only the namespaces the new shard
takes (about ``1 / (n + 1)`` of them); nothing moves between the old shards.

The count comes from one place, the shard map (a ConfigMap the chart writes). Each shard's
leader declares the count it serves on its own Lease (the one its replicas elect a leader
on) before it looks at the others' Leases, and reconciles only when the map says that count
and no other live shard Lease declares another. Two shards that write then read see at
least one of each other's declarations (the API server's reads are linearizable), so two
counts are never served at once, and under one count each namespace has one owner. A shard
that sees the map change stops reconciling and releases its Lease before it starts again
with the new count; one that dies keeps the others waiting until its Lease's term ran out
unrenewed, by which time it stopped itself (``lease``).
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

MAX_SHARDS = 64
"""More shards than any cluster here needs; bounds what the map may say."""
COUNT_KEY = "count"
"""The shard map's data key holding the number of shards."""
LABEL_MAP = "ambient.ai/shard-map"
"""On each shard's Lease: the shard map it follows (how shards find each other's Leases)."""
ANNOTATION_SHARD = "ambient.ai/shard"
"""On each shard's Lease: ``index/count``, the share its holder serves."""

_JUMP_MULTIPLIER = 2862933555777941757
_MASK = (1 << 64) - 1


@functools.lru_cache(maxsize=16384)  # asked on every watch event of every object
def owner(namespace: str, count: int) -> int:
    """The shard (``0 .. count - 1``) that owns ``namespace`` when there are ``count``."""
    if not 1 <= count <= MAX_SHARDS:
        raise ValueError(f"shard count must be 1 to {MAX_SHARDS}, got {count}")
    key = int.from_bytes(hashlib.sha256(namespace.encode()).digest()[:8], "big")
    bucket, jump = -1, 0
    while jump < count:
        bucket = jump
        key = (key * _JUMP_MULTIPLIER + 1) & _MASK
        jump = int((bucket + 1) * ((1 << 31) / ((key >> 33) + 1)))
    return bucket


@dataclass(frozen=True, slots=True)
class Share:
    """One shard's part: its index among ``count`` shards."""

    index: int
    count: int

    def __post_init__(self) -> None:
        if not 1 <= self.count <= MAX_SHARDS or not 0 <= self.index < MAX_SHARDS:
            raise ValueError(f"no such shard: {self.index} of {self.count}")

    def owns(self, namespace: str) -> bool:
        """Whether this shard reconciles ``namespace``."""
        return owner(namespace, self.count) == self.index

    def annotation(self) -> str:
        """How the share is written on the shard's Lease."""
        return f"{self.index}/{self.count}"

    @classmethod
    def parse(cls, text: str) -> Share | None:
        """The share an annotation declares, or None when it declares none readable."""
        index, sep, count = text.partition("/")
        try:
            return cls(int(index), int(count)) if sep else None
        except ValueError:
            return None


def map_count(configmap: Mapping[str, Any] | None) -> int | None:
    """The shard count a shard map holds; None when there is no map or it says nothing
    usable (a shard then waits: fail closed, no namespace served twice)."""
    if configmap is None:
        return None
    text = str((configmap.get("data") or {}).get(COUNT_KEY, "")).strip()
    if not text.isdigit() or not 1 <= int(text) <= MAX_SHARDS:
        return None
    return int(text)


@dataclass(frozen=True, slots=True)
class Claim:
    """What one shard Lease says: its name, holder and declared share."""

    lease: str
    holder: str
    share: Share | None

    @classmethod
    def of(cls, lease: Mapping[str, Any]) -> Claim:
        metadata = lease.get("metadata") or {}
        annotations = metadata.get("annotations") or {}
        return cls(
            lease=str(metadata.get("name") or ""),
            holder=str((lease.get("spec") or {}).get("holderIdentity") or ""),
            share=Share.parse(str(annotations.get(ANNOTATION_SHARD) or "")),
        )


class Verdict(StrEnum):
    SERVE = "serve"
    """Reconcile the namespaces this share owns."""
    WAIT = "wait"
    """Another live shard serves another count (or this index): wait for it to stop."""
    IDLE = "idle"
    """The map has fewer shards than this index: own nothing and wait."""
    RESTART = "restart"
    """The map's count is not the one this shard declared: stop, release, start again."""


def decide(mine: Share, mapped: int | None, live: Iterable[Claim], my_lease: str) -> Verdict:
    """What a shard that holds ``my_lease`` declaring ``mine`` may do, given the map's count
    and the other shards' Leases that are live (held and seen renewed within their term)."""
    if mapped is None:
        return Verdict.WAIT
    if mapped != mine.count:
        return Verdict.RESTART
    if mine.index >= mine.count:
        return Verdict.IDLE
    for claim in live:
        if claim.lease == my_lease or not claim.holder:
            continue
        if claim.share is None or claim.share.count != mine.count:
            return Verdict.WAIT  # an older (or newer) count still served, or unknown
        if claim.share.index == mine.index:
            return Verdict.WAIT  # two Leases for one index: a misconfiguration, fail closed
    return Verdict.SERVE


def unserved(count: int, live: Iterable[Claim]) -> list[int]:
    """The indexes below ``count`` that no live Lease declares under that count: their
    namespaces wait for a shard that is not running (worth a warning)."""
    served = {c.share.index for c in live if c.holder and c.share and c.share.count == count}
    return [i for i in range(count) if i not in served]
