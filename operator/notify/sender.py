"""Sends notifications in the background, with retries, never in the reconcile path.

Reconciliation only ``submit``s (it never waits on an endpoint); a few worker tasks post,
retry with exponential backoff, and report the outcome through ``on_done`` so the caller
can record it in the Session's history. A dead endpoint costs a worker's time, not the
operator's progress, and a full queue refuses new work instead of growing: what was not
recorded as delivered is owed again on the next resync.

Tenants choose the URLs, so every request goes through the egress rule (``egress``): the
host is resolved once per request, every address it resolved to is checked, and the
connection goes to those checked addresses (TLS still verifies, and SNI still names, the
URL's host). Nothing resolves the name a second time, so it cannot be re-pointed at an
internal address between the check and the connection. Redirects are not followed: a
3xx is a failed delivery. Response bodies are never read into what is recorded.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult

from ambient.operator.notify import egress
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
Resolve = Callable[[str, int], Awaitable[list[str]]]
"""A host name and port to the addresses it resolves to (the DNS lookup)."""

ERROR_MAX = 200
"""Longest error text an Outcome carries (it is written into history)."""


class EgressRefusedError(OSError):
    """The host resolved to an address the egress rule refuses."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"egress refused: {reason}")
        self.reason = reason


async def system_resolve(host: str, port: int) -> list[str]:
    """The system's resolver (getaddrinfo in a thread), every address family."""
    results = await aiohttp.ThreadedResolver().resolve(host, port, family=socket.AF_UNSPEC)
    return [r["host"] for r in results]


class CheckedResolver(AbstractResolver):
    """aiohttp's resolver: one lookup, every address checked, only those connected to."""

    def __init__(self, rule: egress.EgressRule, resolve: Resolve = system_resolve) -> None:
        self._rule = rule
        self._resolve = resolve

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_UNSPEC
    ) -> list[ResolveResult]:
        addresses = await self._resolve(host, port)
        if not addresses:
            raise OSError(f"{host} resolved to no address")
        for address in addresses:
            why = egress.refusal(self._rule, host, address)
            if why:
                raise EgressRefusedError(f"{why} address")
        return [
            {
                "hostname": host,
                "host": address,
                "port": port,
                "family": socket.AF_INET6 if ":" in address else socket.AF_INET,
                "proto": 0,
                "flags": socket.AI_NUMERICHOST | socket.AI_NUMERICSERV,
            }
            for address in addresses
        ]

    async def close(self) -> None:
        pass


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
        egress_rule: egress.EgressRule | None = None,
        resolve: Resolve = system_resolve,
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
        # No allow-list and no cluster CIDRs unless given: every internal range refused.
        self._rule = egress_rule or egress.EgressRule()
        self._resolve = resolve

    async def start(self) -> None:
        connector = aiohttp.TCPConnector(
            ssl=self._ssl if self._ssl else True,
            resolver=CheckedResolver(self._rule, self._resolve),
            # Every request looks the name up and checks it afresh: no cached answer and
            # no kept-alive connection outlives the check it passed.
            use_dns_cache=False,
            force_close=True,
        )
        # trust_env=False: no proxy from the environment carries requests past the rule.
        self._http = aiohttp.ClientSession(
            timeout=self._timeout, connector=connector, trust_env=False
        )
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
            # An address literal is not looked up, so the resolver never sees it: check here.
            refused = egress.literal_refusal(self._rule, job.delivery.url)
            if refused:
                return Outcome(False, attempt, None, f"egress refused: {refused} address")
            headers = notifications.headers(job.delivery, job.body, int(self._clock()), job.secret)
            try:
                async with self._http.post(
                    job.delivery.url, data=job.body, headers=headers, allow_redirects=False
                ) as rsp:
                    status, error = rsp.status, ""
                    # The body is neither read nor recorded: an internal service's answer
                    # must not reach the tenant through history.
            except aiohttp.ClientConnectorError as exc:
                if isinstance(exc.os_error, EgressRefusedError):
                    return Outcome(False, attempt, None, str(exc.os_error)[:ERROR_MAX])
                status, error = None, type(exc).__name__
            except (aiohttp.ClientError, TimeoutError) as exc:
                status, error = None, type(exc).__name__
            if status is not None and 200 <= status < 300:
                return Outcome(True, attempt, status)
            if status is not None and 300 <= status < 400:
                return Outcome(False, attempt, status, f"redirect not followed (HTTP {status})")
            if not notifications.retryable(status) or attempt == self._max_attempts:
                break
            await asyncio.sleep(
                notifications.backoff(attempt, self._base_backoff, self._max_backoff)
            )
        return Outcome(False, attempt, status, (error or f"HTTP {status}")[:ERROR_MAX])
