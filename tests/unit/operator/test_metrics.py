"""Operator metrics: names, labels and values as a scrape would see them."""

from __future__ import annotations

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from ambient.operator import metrics as m


def _scrape(om: m.OperatorMetrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = generate_latest(om.registry).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_sessions_by_phase_reason_and_queue_depth() -> None:
    bodies = [
        {"metadata": {"namespace": "a"}, "status": {"phase": "Running"}},
        {"metadata": {"namespace": "a"}, "status": {"phase": "Pending", "reason": "Queued"}},
        {"metadata": {"namespace": "a"}, "status": {"phase": "Pending", "reason": "Queued"}},
        {"metadata": {"namespace": "b"}, "status": {"phase": "Failed", "reason": "Cancelled"}},
        {"metadata": {"namespace": "b"}},
    ]
    om = m.create(lambda: m.samples_from_bodies(bodies))
    got = _scrape(om)
    sessions = "ambient_sessions"
    assert got[(sessions, (("namespace", "a"), ("phase", "Pending"), ("reason", "Queued")))] == 2
    assert got[(sessions, (("namespace", "a"), ("phase", "Running"), ("reason", "")))] == 1
    assert got[(sessions, (("namespace", "b"), ("phase", "Pending"), ("reason", "")))] == 1
    assert got[("ambient_queue_depth", (("namespace", "a"),))] == 2
    assert ("ambient_queue_depth", (("namespace", "b"),)) not in got


def test_gauges_follow_the_snapshot_at_each_scrape() -> None:
    bodies: list[dict[str, object]] = []
    om = m.create(lambda: m.samples_from_bodies(bodies))
    assert not [k for k in _scrape(om) if k[0] == "ambient_sessions"]
    bodies.append({"metadata": {"namespace": "a"}, "status": {"phase": "Completed"}})
    assert [k for k in _scrape(om) if k[0] == "ambient_sessions"]


def test_spend_and_budget_per_namespace() -> None:
    policies = [
        m.PolicySample("a", "12.50", "USD", "100.00"),
        m.PolicySample("b", "not-money", "EUR", None),
    ]
    got = _scrape(m.create(lambda: [], lambda: policies))
    labels = (("currency", "USD"), ("namespace", "a"))
    assert got[("ambient_namespace_spend_month_to_date", labels)] == 12.5
    assert got[("ambient_namespace_budget_monthly", labels)] == 100.0
    assert not [k for k in got if ("namespace", "b") in k[1]]


def test_counters_and_histogram_are_exported() -> None:
    om = m.create(lambda: [])
    om.reconcile_seconds.observe(0.02)
    om.reconcile_errors.labels(kind="Timeout").inc()
    om.notifications.labels(event="session.failed", outcome="delivered").inc(2)
    got = _scrape(om)
    assert got[("ambient_reconcile_duration_seconds_count", ())] == 1
    assert got[("ambient_reconcile_errors_total", (("kind", "Timeout"),))] == 1
    key = (("event", "session.failed"), ("outcome", "delivered"))
    assert got[("ambient_notifications_total", key)] == 2


def test_each_create_has_its_own_registry() -> None:
    first, second = m.create(lambda: []), m.create(lambda: [])
    first.reconcile_errors.labels(kind="x").inc()
    assert ("ambient_reconcile_errors_total", (("kind", "x"),)) not in _scrape(second)


def test_sessions_whose_reconciles_fail_are_counted_per_namespace() -> None:
    samples = [
        m.SessionSample("a", "Pending", "", failures=3),
        m.SessionSample("a", "Running", "", failures=1),
        m.SessionSample("a", "Running", ""),
        m.SessionSample("b", "Running", ""),
    ]
    got = _scrape(m.create(lambda: samples))
    assert got[("ambient_sessions_reconcile_failing", (("namespace", "a"),))] == 2
    assert ("ambient_sessions_reconcile_failing", (("namespace", "b"),)) not in got
