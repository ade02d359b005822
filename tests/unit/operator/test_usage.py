"""Month-to-date spend per namespace, from the Sessions' status.usage."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from ambient.operator import usage


def _s(created: str, cost: str | None) -> dict:
    body: dict = {"metadata": {"creationTimestamp": created}}
    if cost is not None:
        body["status"] = {"usage": {"cost": cost}}
    return body


def test_sums_only_the_month_and_to_the_cent():
    sessions = [
        _s("2026-03-01T00:00:00Z", "0.10"),
        _s("2026-03-31T23:59:59Z", "0.20"),
        _s("2026-02-28T23:59:59Z", "100.00"),  # last month
        _s("2026-03-05T00:00:00Z", None),  # no usage yet
        _s("2026-03-05T00:00:00Z", "garbage"),
    ]
    assert usage.month_to_date(sessions, "2026-03") == Decimal("0.30")
    assert usage.month_of(datetime(2026, 3, 1, tzinfo=UTC)) == "2026-03"


def test_patch_only_when_the_figure_changes():
    assert usage.policy_status_patch({}, Decimal("0.3"), "2026-03") == {
        "status": {"month": "2026-03", "monthToDateSpend": "0.30"}
    }
    current = {"month": "2026-03", "monthToDateSpend": "0.30"}
    assert usage.policy_status_patch(current, Decimal("0.30"), "2026-03") is None
    assert usage.policy_status_patch(current, Decimal("0"), "2026-04") == {
        "status": {"month": "2026-04", "monthToDateSpend": "0.00"}
    }
