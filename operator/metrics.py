"""Prometheus metrics of the operator, with conventional names and bounded labels.

Counts of Sessions by phase and reason, queue depth and spend are computed at scrape time
from the controller's state (snapshot functions its wiring passes in), so nothing has to
keep gauges in step with every event; reconcile latency and outcomes are recorded as they
happen.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client import Counter as PromCounter
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector


@dataclass(frozen=True)
class SessionSample:
    """The part of a Session the metrics read."""

    namespace: str
    phase: str
    reason: str
    failures: int = 0
    """Consecutive failed reconciles (0 when the last one succeeded)."""


@dataclass(frozen=True)
class PolicySample:
    """The part of a NamespacePolicy the metrics read."""

    namespace: str
    month_to_date_spend: str
    currency: str
    monthly_budget: str | None


def session_counts(sessions: Iterable[SessionSample]) -> Counter[tuple[str, str, str]]:
    """Sessions by (namespace, phase, reason); an empty reason stays empty, not 'None'."""
    return Counter((s.namespace, s.phase, s.reason) for s in sessions)


def _money(value: str | None) -> float | None:
    try:
        return float(Decimal(value)) if value is not None else None
    except InvalidOperation:
        return None


class StateCollector(Collector):
    """Gauges computed from snapshots at scrape time."""

    def __init__(
        self,
        sessions: Callable[[], Iterable[SessionSample]],
        policies: Callable[[], Iterable[PolicySample]] = lambda: (),
    ) -> None:
        self._sessions = sessions
        self._policies = policies

    def collect(self) -> Iterator[Metric]:
        by_state = GaugeMetricFamily(
            "ambient_sessions",
            "Sessions by namespace, phase and reason.",
            labels=["namespace", "phase", "reason"],
        )
        queued = GaugeMetricFamily(
            "ambient_queue_depth", "Sessions waiting in the queue.", labels=["namespace"]
        )
        queue: Counter[str] = Counter()
        for (namespace, phase, reason), count in sorted(session_counts(self._sessions()).items()):
            by_state.add_metric([namespace, phase, reason], count)
            if reason == "Queued":
                queue[namespace] += count
        for namespace, count in sorted(queue.items()):
            queued.add_metric([namespace], count)
        yield by_state
        yield queued
        failing = GaugeMetricFamily(
            "ambient_sessions_reconcile_failing",
            "Sessions whose last reconcile failed, waiting for their backed-off retry.",
            labels=["namespace"],
        )
        failing_counts: Counter[str] = Counter()
        for sample in self._sessions():
            if sample.failures:
                failing_counts[sample.namespace] += 1
        for namespace, count in sorted(failing_counts.items()):
            failing.add_metric([namespace], count)
        yield failing
        spend = GaugeMetricFamily(
            "ambient_namespace_spend_month_to_date",
            "Month-to-date spend per namespace, in the policy's currency.",
            labels=["namespace", "currency"],
        )
        budget = GaugeMetricFamily(
            "ambient_namespace_budget_monthly",
            "Monthly budget per namespace, in the policy's currency.",
            labels=["namespace", "currency"],
        )
        for policy in self._policies():
            amount = _money(policy.month_to_date_spend)
            if amount is not None:
                spend.add_metric([policy.namespace, policy.currency], amount)
            limit = _money(policy.monthly_budget)
            if limit is not None:
                budget.add_metric([policy.namespace, policy.currency], limit)
        yield spend
        yield budget


@dataclass(frozen=True)
class OperatorMetrics:
    """Everything the operator exports, on its own registry (no process-global state)."""

    registry: CollectorRegistry
    reconcile_seconds: Histogram
    reconcile_errors: PromCounter
    notifications: PromCounter
    audit_exported: PromCounter


def create(
    sessions: Callable[[], Iterable[SessionSample]],
    policies: Callable[[], Iterable[PolicySample]] = lambda: (),
    registry: CollectorRegistry | None = None,
) -> OperatorMetrics:
    """Register the operator's metrics on ``registry`` (a fresh one by default)."""
    registry = registry or CollectorRegistry()
    registry.register(StateCollector(sessions, policies))
    return OperatorMetrics(
        registry=registry,
        reconcile_seconds=Histogram(
            "ambient_reconcile_duration_seconds",
            "Time to reconcile one Session (plan and writes).",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=registry,
        ),
        reconcile_errors=PromCounter(
            "ambient_reconcile_errors_total",
            "Reconciles that failed, by kind of error (its class name).",
            ["kind"],
            registry=registry,
        ),
        notifications=PromCounter(
            "ambient_notifications_total",
            "Notification deliveries by event and outcome.",
            ["event", "outcome"],
            registry=registry,
        ),
        audit_exported=PromCounter(
            "ambient_audit_records_exported_total",
            "Audit records written to the artifact store.",
            registry=registry,
        ),
    )


def samples_from_bodies(bodies: Iterable[Mapping[str, object]]) -> Iterator[SessionSample]:
    """SessionSamples from raw Session bodies (as the index holds them)."""
    for body in bodies:
        meta = body.get("metadata")
        status = body.get("status")
        meta = meta if isinstance(meta, Mapping) else {}
        status = status if isinstance(status, Mapping) else {}
        yield SessionSample(
            namespace=str(meta.get("namespace") or ""),
            phase=str(status.get("phase") or "Pending"),
            reason=str(status.get("reason") or ""),
        )
