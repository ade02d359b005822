"""The operator's periodic work beside reconciliation: retention, audit export, metrics.

``supervise`` registers each with the operator's one ``Supervisor``, which starts them at
start-up and stops them at clean-up together with the controller's own loops (resync,
usage). Each loop survives its own errors: a store or API outage delays retention or
export, it never stops reconciliation.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime
from functools import partial
from typing import Any

import pydantic
from prometheus_client import start_http_server

from ambient.common.audit import trail as audit
from ambient.common.audit.export import AuditExporter
from ambient.common.kube.client import Kube
from ambient.common.store.s3 import S3Store, StoreSettings
from ambient.crds.models import NamespacePolicy
from ambient.operator import janitor, metrics
from ambient.operator.settings import OperatorSettings
from ambient.operator.supervisor import Supervisor, every

log = logging.getLogger(__name__)


def store_from_settings() -> tuple[S3Store | None, str]:
    settings = StoreSettings()
    return (S3Store.from_settings(settings), settings.prefix) if settings.bucket else (None, "")


class MetricsEndpoint:
    """The Prometheus /metrics endpoint on its own thread."""

    def __init__(self, port: int, om: metrics.OperatorMetrics) -> None:
        self.port, self.om = port, om
        self._server: Any = None

    async def start(self) -> None:
        try:
            self._server, _ = start_http_server(self.port, registry=self.om.registry)
        except OSError as exc:  # metrics are not worth stopping reconciliation for
            log.error("metrics endpoint not started on port %s: %s", self.port, exc)

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            await asyncio.to_thread(server.shutdown)
            server.server_close()


def supervise(
    supervisor: Supervisor,
    *,
    api: Kube,
    settings: OperatorSettings,
    om: metrics.OperatorMetrics,
    store: S3Store | None,
    prefix: str,
    remember: Callable[[metrics.PolicySample], None],
    now: Callable[[], datetime],
) -> None:
    """Register the metrics endpoint, the audit export and retention. ``remember`` keeps
    each policy's spend and budget for the metrics, as retention reads them."""
    if settings.metrics_port:
        endpoint = MetricsEndpoint(settings.metrics_port, om)
        supervisor.service(endpoint.start, endpoint.stop)
    exporter = AuditExporter(store, prefix=prefix) if store is not None else None

    async def add_sink() -> None:
        if exporter is not None:
            audit.add_sink(exporter.add)

    async def clear_sinks() -> None:
        audit.clear_sinks()

    supervisor.service(add_sink, clear_sinks)
    if exporter is not None:
        supervisor.loop(
            "audit-export", partial(export_loop, exporter, settings.audit_flush_seconds, om)
        )
    if settings.retention_interval_seconds:

        async def retention() -> None:
            await asyncio.to_thread(
                partial(retention_pass, api, store, prefix, settings, now(), remember=remember)
            )

        supervisor.loop(
            "retention",
            partial(
                every, settings.retention_interval_seconds, retention, "retention pass", first=True
            ),
        )


async def export_loop(exporter: AuditExporter, every: float, om: metrics.OperatorMetrics) -> None:
    try:
        while True:
            await asyncio.sleep(every)
            before = exporter.records_written
            await asyncio.to_thread(exporter.flush)
            om.audit_exported.inc(exporter.records_written - before)
    finally:  # on shutdown, what is buffered still goes out
        await asyncio.to_thread(exporter.flush)


def retention_pass(
    api: Kube,
    store: S3Store | None,
    prefix: str,
    settings: OperatorSettings,
    now: datetime,
    *,
    remember: Callable[[metrics.PolicySample], None] = lambda _: None,
) -> list[janitor.Outcome]:
    """One retention run over every NamespacePolicy (synchronous; runs in a thread)."""
    outcomes = []
    # An operator limited to some namespaces may not list cluster-wide (namespaced RBAC).
    watched = settings.namespace_list
    bodies = (
        [b for ns in watched for b in api.list_policies(ns)] if watched else api.list_policies()
    )
    for body in bodies:
        try:
            policy = NamespacePolicy.model_validate(body)
        except pydantic.ValidationError as exc:
            log.warning("NamespacePolicy unreadable, retention skipped: %s", exc)
            continue
        namespace = policy.metadata.namespace
        if not settings.owns(namespace):
            continue  # another operator shard's namespace
        budget = policy.spec.models.budget
        remember(
            metrics.PolicySample(
                namespace,
                policy.status.month_to_date_spend,
                budget.currency if budget else "USD",
                budget.monthly if budget else None,
            )
        )
        outcomes.append(
            janitor.run(
                api,
                store,
                namespace,
                policy.spec.retention,
                now,
                prefix=prefix,
                dry_run=settings.retention_dry_run,
            )
        )
    return outcomes
