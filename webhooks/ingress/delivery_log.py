"""The delivery log, I/O side: each delivery's audit record to the exporter, and the raw
request of a refused or failed one to the store (create-only), for replay.

Deliveries whose key resolved to no namespace are only logged (the app's WebhookEvent
line): nothing in them can be attributed to a tenant, and storing them would let anyone
fill the store. Storing never changes the answer: a store outage is logged and counted,
the record then simply has no requestKey.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from concurrent.futures import Executor
from datetime import UTC, datetime
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, Counter

from ambient.common.store import keys
from ambient.common.store.s3 import AlreadyExistsError
from ambient.webhooks.exporting import BackgroundExport

from . import delivery_records
from .ratelimit import RateLimiter

log = logging.getLogger("ambient.ingress.deliveries")


class DeliveryAudit(Protocol):
    """What the pipeline's per-delivery Audit carries (pipeline.Audit)."""

    source: str
    trace_id: str
    event: str
    delivery_id: str
    namespace: str
    session: str
    outcome: str
    reason: str
    status: int
    extra: dict[str, Any]


class DeliveryLog:
    """Records deliveries; the handler calls ``record`` once per delivery, after deciding."""

    def __init__(
        self,
        export: BackgroundExport,
        *,
        keep_ignored: bool = False,
        store_timeout: float = 5.0,
        keep_per_second: float = 1.0,
        keep_burst: int = 300,
        keep_unverified_bytes: int = 256 * 1024,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.export = export
        self.keep_ignored = keep_ignored
        self.keep_unverified_bytes = keep_unverified_bytes
        """Largest body kept whose signature did not hold (finding 10 of issue 17)."""
        self.store_timeout = store_timeout
        self.clock = clock
        self.monotonic = monotonic
        # Refused requests are bodies from whoever holds a key but maybe not the secret:
        # a per-namespace budget bounds what such a sender can make us store.
        self._budget = RateLimiter(keep_per_second, keep_burst)
        self._stored: Counter | None = None

    @property
    def backlogged(self) -> bool:
        """The exporter holds nearly its most records: the store has been down a while."""
        return self.export.backlogged

    def register(self, registry: CollectorRegistry) -> None:
        """Put the log's metrics on the app's registry."""
        exported = Counter(
            "ambient_audit_records_exported_total",
            "Audit records written to the artifact store.",
            registry=registry,
        )
        self._stored = Counter(
            "ambient_ingress_requests_stored_total",
            "Raw requests of refused or failed deliveries kept for replay, by result.",
            ["result"],
            registry=registry,
        )
        self.export.on_written = exported.inc

    async def record(self, audit: DeliveryAudit, executor: Executor) -> None:
        """Never raises: the answer is decided already, and the log must not change it."""
        try:
            await self._record(audit, executor)
        except Exception:
            log.exception("delivery %s not recorded in the delivery log", audit.trace_id)

    async def _record(self, audit: DeliveryAudit, executor: Executor) -> None:
        now = self.clock()
        body: bytes | None = audit.extra.get("body")
        headers: dict[str, str] = audit.extra.get("headers") or {}
        if not audit.namespace:
            return
        delivery_id = audit.delivery_id or delivery_records.peek_delivery_id(audit.source, headers)
        event = audit.event or delivery_records.peek_event(audit.source, headers)
        # The Session this delivery maps to (deterministic), so a refused or ignored
        # delivery shows in the trail of the Session a replay later creates.
        session = audit.session or delivery_records.session_of(
            audit.source, delivery_id, audit.outcome, body
        )
        key = None
        if body is not None and delivery_records.should_keep(
            audit.outcome,
            body_read=True,
            namespace=audit.namespace,
            keep_ignored=self.keep_ignored,
            reason=audit.reason,
            size=len(body),
            unverified_limit=self.keep_unverified_bytes,
        ):
            key = await self._keep(
                audit, now, delivery_id, headers=headers, body=body, pool=executor
            )
        self.export.add(
            delivery_records.delivery_record(
                timestamp=now,
                namespace=audit.namespace,
                source=audit.source,
                event=event,
                delivery_id=delivery_id,
                session=session,
                outcome=audit.outcome,
                reason=audit.reason,
                status=audit.status,
                trace_id=audit.trace_id,
                request_key=key,
            )
        )

    async def _keep(
        self,
        audit: DeliveryAudit,
        now: datetime,
        delivery_id: str,
        *,
        headers: dict[str, str],
        body: bytes,
        pool: Executor,
    ) -> str | None:
        key = keys.delivery_request_key(
            self.export.prefix,
            audit.namespace,
            source=audit.source,
            delivery_id=delivery_id,
            body=body,
            day=now.date(),
        )
        stored = delivery_records.StoredRequest.of(
            source=audit.source,
            namespace=audit.namespace,
            received_at=now,
            trace_id=audit.trace_id,
            delivery_id=delivery_id,
            headers=headers,
            body=body,
        )
        if self._budget.take(audit.namespace, self.monotonic()) > 0:
            self._count("limited")
            log.warning(
                "request of delivery %s not kept: namespace %s is over its budget",
                audit.trace_id,
                audit.namespace,
            )
            return None
        loop = asyncio.get_running_loop()
        result = "stored"
        try:
            await asyncio.wait_for(
                loop.run_in_executor(pool, self.export.store.put_new, key, stored.encode()),
                self.store_timeout,
            )
        except AlreadyExistsError:
            result = "exists"  # the sender retried the very same request today
        except Exception as exc:
            log.warning(
                "could not keep the request of delivery %s for replay: %s",
                audit.trace_id,
                type(exc).__name__,
            )
            result = "failed"
        self._count(result)
        return None if result == "failed" else key

    def _count(self, result: str) -> None:
        if self._stored is not None:
            self._stored.labels(result).inc()
