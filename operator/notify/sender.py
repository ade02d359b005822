"""Sends notifications in the background, with retries, never in the reconcile path.

Reconciliation only ``submit``s (it never waits on an endpoint); a few worker tasks post,
retry with exponential backoff, and report the outcome through ``on_done`` so the caller
can record it in the Session's history. A dead endpoint costs a worker's time, not the
operator's progress, and a full queue refuses new work instead of growing: what was not
recorded as delivered is owed again on the next resync.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import aiohttp

from ambient.operator.notify import rules as notifications
from ambient.operator.notify.rules import Delivery

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Job:
    """One notification to send: where, what, and the key to sign it with."""

    namespace: str
    session: str
    delivery: Delivery
    body: bytes
    secret: bytes | None = None


@dataclass(frozen=True)
class Outcome:
    """How a delivery ended."""

    delivered: bool
    attempts: int
    status: int | None
    """The last HTTP status; None when no response came back."""
    error: str = ""


OnDone = Callable[[Job, Outcome], Awaitable[None]]


class Notifier:
    """A bounded queue drained by a few workers."""

    def __init__(
        self,
        on_done: OnDone,
        *,
        workers: int = 4,
        queue_size: int = 10_000,
        max_attempts: int = 5,
        timeout: float = 5.0,
        base_backoff: float = 1.0,
        max_backoff: float = 60.0,
        clock: Callable[[], float] = time.time,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._on_done = on_done
        self._queue: asyncio.Queue[Job] = asyncio.Queue(queue_size)
        self._in_flight: set[str] = set()
        self._workers = workers
        self._tasks: list[asyncio.Task[None]] = []
        self._max_attempts = max_attempts
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._base_backoff = base_backoff
        self._max_backoff = max_backoff
        self._clock = clock
        self._http: aiohttp.ClientSession | None = None
        self._ssl = ssl_context

    async def start(self) -> None:
        connector = aiohttp.TCPConnector(ssl=self._ssl) if self._ssl else None
        self._http = aiohttp.ClientSession(timeout=self._timeout, connector=connector)
        self._tasks = [
            asyncio.create_task(self._work(), name=f"notifier-{i}") for i in range(self._workers)
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        if self._http is not None:
            await self._http.close()
            self._http = None

    def submit(self, job: Job) -> bool:
        """Queue a delivery unless the same one is already queued or being sent."""
        key = job.delivery.delivery_id
        if key in self._in_flight:
            return False
        try:
            self._queue.put_nowait(job)
        except asyncio.QueueFull:
            log.warning("notification queue full; %s stays owed", key)
            return False
        self._in_flight.add(key)
        return True

    async def drain(self) -> None:
        """Wait until everything submitted has an outcome (tests and shutdown)."""
        await self._queue.join()

    async def _work(self) -> None:
        while True:
            job = await self._queue.get()
            try:
                outcome = await self._send(job)
                try:
                    await self._on_done(job, outcome)
                except Exception:  # recording failed: the delivery stays owed, resent later
                    log.exception("could not record notification %s", job.delivery.delivery_id)
            finally:
                self._in_flight.discard(job.delivery.delivery_id)
                self._queue.task_done()

    async def _send(self, job: Job) -> Outcome:
        assert self._http is not None, "Notifier.start() was not awaited"
        status: int | None = None
        error = ""
        for attempt in range(1, self._max_attempts + 1):
            headers = notifications.headers(job.delivery, job.body, int(self._clock()), job.secret)
            try:
                async with self._http.post(job.delivery.url, data=job.body, headers=headers) as rsp:
                    status, error = rsp.status, ""
                    await rsp.read()
            except (aiohttp.ClientError, TimeoutError) as exc:
                status, error = None, type(exc).__name__
            if status is not None and 200 <= status < 300:
                return Outcome(True, attempt, status)
            if not notifications.retryable(status) or attempt == self._max_attempts:
                break
            await asyncio.sleep(
                notifications.backoff(attempt, self._base_backoff, self._max_backoff)
            )
        return Outcome(False, attempt, status, error or f"HTTP {status}")
