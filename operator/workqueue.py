"""A work queue of Session keys, as controllers built on client-go use one.

Watch events only mark a key dirty; a fixed number of workers reconcile dirty keys. So
the memory in flight is bounded by the workers, not by the size of a burst, and a key
that changes while a worker has it is processed again afterwards, never twice at once.
Keys that need their work started (a Job created) are served before keys that only need
progress recorded, so under a burst every Session starts early.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from typing import Generic, TypeVar

K = TypeVar("K")

START = 0
"""The key needs its workload created."""
PROGRESS = 1
"""The key needs its status brought up to date."""


class WorkQueue(Generic[K]):
    """Deduplicating, two-priority FIFO with per-key exclusivity."""

    def __init__(self) -> None:
        self._queues: tuple[OrderedDict[K, None], OrderedDict[K, None]] = (
            OrderedDict(),
            OrderedDict(),
        )
        self._processing: set[K] = set()
        self._again: dict[K, int] = {}
        self._ready = asyncio.Event()

    def __len__(self) -> int:
        return len(self._queues[START]) + len(self._queues[PROGRESS])

    def add(self, key: K, priority: int = PROGRESS) -> None:
        """Mark ``key`` dirty. A key already queued keeps its place (at the better priority);
        a key being processed is queued again when its worker is done."""
        if key in self._processing:
            self._again[key] = min(priority, self._again.get(key, priority))
            return
        if key in self._queues[START]:
            return
        if key in self._queues[PROGRESS]:
            if priority == START:
                del self._queues[PROGRESS][key]
                self._queues[START][key] = None
            return
        self._queues[priority][key] = None
        self._ready.set()

    def discard(self, key: K) -> None:
        """Forget a key (its object was deleted)."""
        for queue in self._queues:
            queue.pop(key, None)
        self._again.pop(key, None)

    async def get(self) -> tuple[K, int]:
        """The next key and the priority it was queued at; the caller must call done()."""
        while not len(self):
            self._ready.clear()
            await self._ready.wait()
        priority = START if self._queues[START] else PROGRESS
        key, _ = self._queues[priority].popitem(last=False)
        self._processing.add(key)
        return key, priority

    def done(self, key: K) -> None:
        self._processing.discard(key)
        again = self._again.pop(key, None)
        if again is not None:
            self.add(key, again)
