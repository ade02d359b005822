"""When each ingress key was last used, kept in its NamespacePolicy's status
(``status.keysLastUsed``) so an admin sees which keys are alive before revoking one.

Recorded at most once an hour per key and never on the delivery's path: a write is a
background task, and a failed one is logged and tried again with the next delivery after
the interval. The map is keyed by the first 16 hex characters of the key's hash, which
identify the key to its admin and say nothing of the key itself.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from ambient.crds import times

log = logging.getLogger("ambient.ingress.keyusage")

INTERVAL_SECONDS = 3600.0
Record = Callable[[str, str, str], Awaitable[None]]
"""(namespace, hash prefix, RFC 3339 time) -> the status written."""


def hash_prefix(digest: str) -> str:
    return digest[:16]


class KeyUsage:
    """Decides when a key's use is worth a write, and makes it in the background."""

    def __init__(self, record: Record | None, interval: float = INTERVAL_SECONDS) -> None:
        self.record = record
        self.interval = interval
        self._last: dict[tuple[str, str], float] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def due(self, namespace: str, digest: str, now: float) -> bool:
        """Whether this use is the first one recorded in ``interval`` (and note it)."""
        key = (namespace, hash_prefix(digest))
        last = self._last.get(key)
        if last is not None and now - last < self.interval:
            return False
        self._last[key] = now
        return True

    def seen(self, namespace: str, digest: str, now: float) -> None:
        if self.record is None or not self.due(namespace, digest, now):
            return
        stamp = times.rfc3339(datetime.now(UTC))
        task = asyncio.get_running_loop().create_task(
            self._write(namespace, hash_prefix(digest), stamp, now)
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _write(self, namespace: str, prefix: str, stamp: str, now: float) -> None:
        assert self.record is not None
        try:
            await self.record(namespace, prefix, stamp)
        except Exception as exc:  # tried again with a later delivery
            self._last.pop((namespace, prefix), None)
            log.warning("key %s... of %s: last use not recorded: %s", prefix, namespace, exc)
