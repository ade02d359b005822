"""The operator's periodic work beside reconciliation: retention, audit export, metrics.

One task per concern for the whole operator (never one per Session), each started at
start-up and cancelled at clean-up. Each loop survives its own errors: a store or API
outage delays retention or export, it never stops reconciliation.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

import pydantic
from prometheus_client import start_http_server

from ambient.common.audit import trail as audit
from ambient.common.audit.export import AuditExporter
from ambient.common.kube.client import Kube
from ambient.common.store.s3 import S3Store, StoreSettings
from ambient.crds.models import NamespacePolicy
from ambient.operator import janitor, metrics
from ambient.operator.notify.outbox import Outbox
from ambient.operator.settings import OperatorSettings

log = logging.getLogger(__name__)

_tasks: list[asyncio.Task[None]] = []
_outbox: list[Outbox] = []
# (namespace, name) -> (phase, reason), kept from the Session events for the metrics.
_states: dict[tuple[str, str], tuple[str, str]] = {}
_policies: dict[str, metrics.PolicySample] = {}


def observe_session(namespace: str, name: str, body: Mapping[str, Any] | None) -> None:
    """Remember a Session's phase and reason (None: it was deleted)."""
    if body is None:
        _states.pop((namespace, name), None)
        return
    status = body.get("status") or {}
    _states[(namespace, name)] = (status.get("phase") or "Pending", status.get("reason") or "")


def _samples() -> Iterator[metrics.SessionSample]:
    for (namespace, _), (phase, reason) in list(_states.items()):
        yield metrics.SessionSample(namespace, phase, reason)


def store_from_settings() -> tuple[S3Store | None, str]:
    settings = StoreSettings()
    return (S3Store.from_settings(settings), settings.prefix) if settings.bucket else (None, "")


async def start(
    api: Kube,
    settings: OperatorSettings,
    policy_of: Callable[[str], NamespacePolicy | None],
) -> metrics.OperatorMetrics:
    """Start the loops; returns the metrics so handlers can record reconcile timings.
    ``policy_of`` gives a namespace's policy from the handlers' watch-fed cache."""
    om = metrics.create(_samples, lambda: list(_policies.values()))
    if settings.metrics_port:
        try:
            start_http_server(settings.metrics_port, registry=om.registry)
        except OSError as exc:  # metrics are not worth stopping reconciliation for
            log.error("metrics endpoint not started on port %s: %s", settings.metrics_port, exc)
    store, prefix = store_from_settings()
    if store is not None:
        exporter = AuditExporter(store, prefix=prefix)
        audit.add_sink(exporter.add)
        _spawn(_export_loop(exporter, settings.audit_flush_seconds, om), "audit-export")
    if settings.retention_interval_seconds:
        _spawn(_retention_loop(api, store, prefix, settings), "retention")
    outbox = Outbox(api, policy_of, om, settings.notify_ca_file, settings.notify_egress_rule)
    await outbox.start()
    _outbox.append(outbox)
    return om


def outbox() -> Outbox | None:
    """The notification outbox, once started."""
    return _outbox[0] if _outbox else None


async def stop() -> None:
    for task in _tasks:
        task.cancel()
    for task in _tasks:
        with contextlib.suppress(asyncio.CancelledError):
            await task
    _tasks.clear()
    for box in _outbox:
        await box.stop()
    _outbox.clear()
    audit.clear_sinks()


def _spawn(coro: Coroutine[Any, Any, None], name: str) -> None:
    _tasks.append(asyncio.create_task(coro, name=name))


async def _export_loop(exporter: AuditExporter, every: float, om: metrics.OperatorMetrics) -> None:
    try:
        while True:
            await asyncio.sleep(every)
            before = exporter.records_written
            await asyncio.to_thread(exporter.flush)
            om.audit_exported.inc(exporter.records_written - before)
    finally:  # on shutdown, what is buffered still goes out
        await asyncio.to_thread(exporter.flush)


async def _retention_loop(
    api: Kube, store: S3Store | None, prefix: str, settings: OperatorSettings
) -> None:
    while True:
        try:
            await asyncio.to_thread(retention_pass, api, store, prefix, settings, datetime.now(UTC))
        except Exception:
            log.exception(
                "retention pass failed; the next one runs in %ss",
                settings.retention_interval_seconds,
            )
        await asyncio.sleep(settings.retention_interval_seconds)


def retention_pass(
    api: Kube, store: S3Store | None, prefix: str, settings: OperatorSettings, now: datetime
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
        budget = policy.spec.models.budget
        _policies[namespace] = metrics.PolicySample(
            namespace,
            policy.status.month_to_date_spend,
            budget.currency if budget else "USD",
            budget.monthly if budget else None,
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
