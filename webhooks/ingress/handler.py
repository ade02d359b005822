"""One delivery, from its key to its answer, without HTTP: authenticate, throttle, read the
body, run the pipeline, answer, count, log, audit.

Order matters for safety: the key decides the namespace before the body is read; the
signature is checked before the body is parsed; nothing answers 2xx until the Session is
stored (invariants 1, 2 and 5 of docs/architecture.md). ``routes`` hands each request to
``IngressHandler.handle`` and writes back the ``Reply``; unit tests call it directly with
fakes for the collaborators (the key index, the session creator, the store, the delivery
log, the clock, the settings).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterable, Callable, Mapping
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Histogram

from ambient.common import logs
from ambient.crds import times
from ambient.webhooks.catchall import INTERNAL_ERROR
from ambient.webhooks.ingress.keyusage import KeyUsage

from . import events
from .errors import IngressError, error_body
from .keyindex import KeyIndex, key_hash
from .pipeline import Audit, PayloadStore, Pipeline, SessionCreator
from .ratelimit import RateLimiter, retry_after
from .settings import IngressSettings

if TYPE_CHECKING:
    from .delivery_log import DeliveryLog

log = logging.getLogger("ambient.ingress")


@dataclass(slots=True)
class Reply:
    """The answer to one delivery: status, JSON body, headers (always X-Trace-Id)."""

    status: int
    body: dict[str, Any]
    headers: dict[str, str]


class _Slot:
    """Whether this request holds one of the large-body slots, and its namespace's share
    (both released once the delivery log has copied the body, finding 10 of issue 17)."""

    __slots__ = ("held", "namespace")

    def __init__(self) -> None:
        self.held = False
        self.namespace = ""


class _TenantSlots:
    """At most ``cap`` large bodies per namespace at once, so one tenant cannot hold every
    large-body slot of a replica. Entries exist only while a namespace uses or awaits one."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self._slots: dict[str, tuple[asyncio.Semaphore, list[int]]] = {}

    async def acquire(self, namespace: str) -> None:
        sem, users = self._slots.setdefault(namespace, (asyncio.Semaphore(self.cap), [0]))
        users[0] += 1
        try:
            await sem.acquire()
        except BaseException:
            self._leave(namespace)
            raise

    def release(self, namespace: str) -> None:
        self._slots[namespace][0].release()
        self._leave(namespace)

    def _leave(self, namespace: str) -> None:
        users = self._slots[namespace][1]
        users[0] -= 1
        if users[0] == 0:
            del self._slots[namespace]

    def __len__(self) -> int:
        return len(self._slots)


class IngressHandler:
    """Deliveries in, replies out; every collaborator is injected."""

    def __init__(
        self,
        index: KeyIndex,
        creator: SessionCreator,
        *,
        settings: IngressSettings | None = None,
        clock: Callable[[], float] = time.monotonic,
        store: PayloadStore | None = None,
        store_prefix: str = "",
        delivery_log: DeliveryLog | None = None,
        executor: Executor | None = None,
        registry: CollectorRegistry | None = None,
        key_usage: KeyUsage | None = None,
    ) -> None:
        cfg = settings or IngressSettings()
        self.index = index
        # When each key was last used, into the policy's status (at most hourly per key).
        self.key_usage = key_usage or KeyUsage(None)
        self.creator = creator
        self.settings = cfg
        self.clock = clock
        self.store = store
        self.delivery_log = delivery_log
        self.executor = executor or ThreadPoolExecutor(
            cfg.api_connections, thread_name_prefix="kube"
        )
        self.pipeline = Pipeline(
            creator,
            inline_limit=cfg.max_body_bytes,
            store=store,
            store_prefix=store_prefix,
            executor=self.executor,
        )
        self.body_limit = cfg.max_stored_body_bytes if store is not None else cfg.max_body_bytes
        # Bodies above the in-object limit (up to 25 MiB each, parsed in memory) are taken a
        # few at a time; the others wait for a slot, within the request timeout.
        self.large_slots = asyncio.Semaphore(cfg.max_large_deliveries)
        self.tenant_large_slots = _TenantSlots(cfg.max_large_deliveries_per_namespace)
        self.limiter = RateLimiter(cfg.rate_per_second, cfg.rate_burst)
        self.registry = registry if registry is not None else CollectorRegistry()
        self.deliveries = Counter(
            "ambient_ingress_deliveries_total",
            "Deliveries by source and outcome",
            ["source", "outcome"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "ambient_ingress_delivery_duration_seconds",
            "Time to answer a delivery",
            ["source"],
            registry=self.registry,
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self.unexpected = Counter(
            "ambient_ingress_unexpected_errors_total",
            "Unexpected errors, each answered 500 in the error shape, by where: delivery "
            "(while handling one, also counted in deliveries_total as outcome error) or http",
            ["where"],
            registry=self.registry,
        )
        if delivery_log is not None:
            delivery_log.register(self.registry)

    @property
    def ready(self) -> bool:
        """Ready once the key index has synced from the NamespacePolicies."""
        return self.index.synced

    async def aclose(self) -> None:
        """At shutdown: the executor's threads, and the creator's connections if it has any."""
        self.executor.shutdown(wait=False)
        close = getattr(self.creator, "aclose", None)
        if close is not None:
            await close()

    async def handle(
        self,
        source: str,
        key: str | None,
        headers: Mapping[str, str],
        body: AsyncIterable[bytes],
    ) -> Reply:
        """Answer one delivery; ``headers`` with lower-case names, ``body`` as it streams in."""
        start = self.clock()
        trace = uuid.uuid4().hex
        logs.bind(trace_id=trace, source=source)
        audit = Audit(source=source, trace_id=trace)
        slot = _Slot()
        try:
            reply = await asyncio.wait_for(
                self._deliver(source, key, headers, body, audit=audit, slot=slot),
                self.settings.request_timeout_seconds,
            )
            audit.outcome = audit.outcome or "accepted"
        except TimeoutError:
            audit.outcome, audit.reason, audit.status = "error", "timeout", 503
            reply = _refusal(
                IngressError(503, "Timeout", "the delivery took too long; retry it"), trace
            )
        except IngressError as exc:
            audit.outcome = audit.outcome or "refused"
            audit.reason = audit.reason or exc.code
            audit.status = exc.status
            reply = _refusal(exc, trace)
        except Exception as exc:
            # The catch-all: a fault of the ingress is answered in the error shape, counted,
            # kept in the delivery log and audited like any other outcome (never a 500
            # page, never a stack trace in the answer; the log has it, under the trace id).
            log.error("delivery %s failed: %s", trace, type(exc).__name__, exc_info=exc)
            self.unexpected.labels("delivery").inc()
            audit.outcome, audit.reason = "error", INTERNAL_ERROR
            reply = _refusal(
                IngressError(
                    500,
                    INTERNAL_ERROR,
                    "the ingress failed to handle this delivery; it is logged under this "
                    "trace id, and a retry may succeed",
                ),
                trace,
            )
        try:
            audit.status = reply.status
            label = source if source in events.SOURCES else "unknown"
            self.deliveries.labels(label, audit.outcome).inc()
            self.latency.labels(label).observe(self.clock() - start)
            if self.delivery_log is not None:  # exported record, request kept for replay
                await self.delivery_log.record(audit, self.executor)
            audit.emit()
        finally:
            # The body (and the delivery log's base64 copy of it) is gone only now: the
            # large-body slot bounds the memory until here, not just until the answer.
            audit.extra.clear()
            if slot.held:
                self.large_slots.release()
                self.tenant_large_slots.release(slot.namespace)
        return reply

    def http_error(self, path: str, exc: Exception, trace: str) -> None:
        """An exception no handler turned into an answer (``routes``' catch-all answers 500
        in the error shape): logged with its stack trace, counted and, on a delivery path,
        audited."""
        log.error("request %s failed: %s", trace, type(exc).__name__, exc_info=exc)
        self.unexpected.labels("http").inc()
        parts = path.split("/")
        if len(parts) > 2 and parts[1] == "webhooks":
            source = parts[2] if parts[2] in events.SOURCES else "unknown"
            self.deliveries.labels(source, "error").inc()
            Audit(
                source=source, trace_id=trace, outcome="error", reason=INTERNAL_ERROR, status=500
            ).emit()

    async def _deliver(
        self,
        source: str,
        key: str | None,
        headers: Mapping[str, str],
        stream: AsyncIterable[bytes],
        *,
        audit: Audit,
        slot: _Slot,
    ) -> Reply:
        if source not in events.SOURCES:
            raise IngressError(
                404, "UnknownSource", f"source must be one of {', '.join(events.SOURCES)}"
            )
        if not key:
            raise IngressError(
                401, "MissingKey", "put the key in the path or send Authorization: Bearer <key>"
            )
        found = self.index.lookup_key(source, key)
        if found is None:
            raise IngressError(
                401,
                "UnknownKey",
                f"this key is not valid for {source}; an admin creates one with "
                "ambient keys create",
            )
        tenant, info = found
        audit.namespace = tenant.namespace
        if info.expires_at is not None and info.expired(datetime.now(UTC)):
            raise IngressError(
                401,
                "KeyExpired",
                f"this key expired at {times.rfc3339(info.expires_at)}; an admin makes a "
                f"new one with ambient keys rotate -n {tenant.namespace} --source {source}",
            )
        self.key_usage.seen(tenant.namespace, info.hash, self.clock())
        if self.delivery_log is not None and self.delivery_log.backlogged:
            # Backpressure, not loss: the audit store has been down so long that the
            # replica holds its most records; the sender retries (issue 17, finding 9).
            audit.outcome = "throttled"
            raise IngressError(
                503,
                "AuditBacklog",
                "the audit store has not taken records for a while; retry the delivery",
                headers={"Retry-After": "30"},
            )
        wait = self.limiter.take(f"{source}:{key_hash(key)}", self.clock())
        if wait > 0:
            audit.outcome = "throttled"
            raise IngressError(
                429,
                "RateLimited",
                "too many deliveries for this key; retry later",
                headers={"Retry-After": retry_after(wait)},
            )
        content_type = headers.get("content-type")
        if events.media_type(content_type) not in (events.JSON, events.FORM):
            raise IngressError(
                415,
                "UnsupportedMediaType",
                "send application/json (Slack slash commands and interactivity: "
                "application/x-www-form-urlencoded)",
            )
        slot.namespace = tenant.namespace
        body = await self._read_body(headers.get("content-length"), stream, slot)
        lowered = {k.lower(): v for k, v in headers.items()}
        audit.extra.update(body=body, headers=lowered)  # for the delivery log, never logged
        result = await self.pipeline.run(tenant, source, lowered, body, audit)
        trace = {"X-Trace-Id": audit.trace_id}
        if result.outcome == "ping":
            return Reply(200, {"status": "pong"}, trace)
        if result.outcome == "challenge":
            return Reply(200, {"challenge": result.decision.delivery.challenge}, trace)
        if result.outcome == "ignored":
            return Reply(200, {"status": "ignored", "reason": result.decision.ignored}, trace)
        accepted = {"namespace": tenant.namespace, "session": audit.session}
        return Reply(202 if result.outcome == "created" else 200, accepted, trace)

    async def _read_body(
        self, declared: str | None, stream: AsyncIterable[bytes], slot: _Slot
    ) -> bytes:
        limit = self.body_limit
        if self.store is not None:
            too_big = IngressError(
                413,
                "PayloadTooLarge",
                f"the body is larger than {limit} bytes, the most the ingress takes",
                {"limit": limit},
            )
        else:
            too_big = IngressError(
                413,
                "PayloadTooLarge",
                f"the body is larger than {limit} bytes, the most kept inside a "
                "Session; larger payloads need an artifact store (AMBIENT_STORE_BUCKET)",
                {"limit": limit},
            )
        inline = self.settings.max_body_bytes
        if declared is not None:
            try:
                length = int(declared)
            except ValueError as exc:
                raise IngressError(
                    400, "BadContentLength", "Content-Length is not a number"
                ) from exc
            if length > limit:
                raise too_big
            if length > inline:
                await self._large_slot(slot)
        chunks = bytearray()
        async for chunk in stream:
            chunks += chunk
            if len(chunks) > limit:
                raise too_big
            if len(chunks) > inline:
                await self._large_slot(slot)
        return bytes(chunks)

    async def _large_slot(self, slot: _Slot) -> None:
        if slot.held:
            return
        # The namespace's share first: waiting for it holds no replica-wide slot.
        await self.tenant_large_slots.acquire(slot.namespace)
        try:
            await self.large_slots.acquire()
        except BaseException:
            self.tenant_large_slots.release(slot.namespace)
            raise
        slot.held = True


def _refusal(exc: IngressError, trace: str) -> Reply:
    return Reply(
        exc.status,
        error_body(exc.code, exc.message, trace, exc.details),
        {**exc.headers, "X-Trace-Id": trace},
    )
