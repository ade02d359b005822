"""The operator's periodic loops and services, started and stopped together.

One task per concern for the whole operator (never one per Session). Each loop survives
its own errors: a store or API outage delays retention, export or the usage roll-up, it
never stops reconciliation. ``stop`` cancels every loop, waits for each to end (so a
loop's ``finally`` still runs, e.g. the last audit export), then stops the services in
the reverse order of their start.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

log = logging.getLogger(__name__)

LoopFactory = Callable[[], Coroutine[Any, Any, None]]
Action = Callable[[], Awaitable[None]]


async def every(
    seconds: float,
    action: Action,
    what: str,
    *,
    first: bool = False,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> None:
    """Run ``action`` every ``seconds`` (``first``: once at once, then every), forever; a
    failed round is logged and the next one runs on time."""
    if first:
        await _round(action, what, seconds)
    while True:
        await sleep(seconds)
        await _round(action, what, seconds)


async def _round(action: Action, what: str, seconds: float) -> None:
    try:
        await action()
    except Exception:
        log.exception("%s failed; the next round runs in %ss", what, seconds)


class Supervisor:
    """Named loops (tasks made when started) and services (a start and a stop)."""

    def __init__(self) -> None:
        self._loops: list[tuple[str, LoopFactory]] = []
        self._services: list[tuple[Action, Action]] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._started: list[Action] = []

    def loop(self, name: str, factory: LoopFactory) -> None:
        """A loop to run while the operator runs."""
        self._loops.append((name, factory))

    def service(self, start: Action, stop: Action) -> None:
        """Something to start with the loops and stop after them."""
        self._services.append((start, stop))

    @property
    def names(self) -> list[str]:
        return [name for name, _ in self._loops]

    @property
    def running(self) -> list[str]:
        """The loops whose task has not ended."""
        return [t.get_name() for t in self._tasks if not t.done()]

    async def start(self) -> None:
        for start, stop in self._services:
            await start()
            self._started.append(stop)
        for name, factory in self._loops:
            self._tasks.append(asyncio.create_task(factory(), name=f"ambient-{name}"))

    async def stop(self) -> None:
        """Stop every loop, then every service; safe to call more than once."""
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                try:
                    await task
                except Exception:
                    log.exception("loop %s failed while stopping", task.get_name())
        started, self._started = self._started, []
        for stop in reversed(started):
            try:
                await stop()
            except Exception:
                log.exception("a service failed to stop")
