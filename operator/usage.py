"""Pure roll-up of a namespace's month-to-date spend from its Sessions' status.usage.

A Session's spend counts in the month (UTC) it was created: a Session that runs across
midnight at the month's end is charged to the month it started in, so a figure never
moves between months after the fact.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal
from typing import Any

from ambient.crds.models import money


def month_of(moment: datetime) -> str:
    """YYYY-MM in UTC, as NamespacePolicy.status.month holds it."""
    return moment.strftime("%Y-%m")


def session_cost(body: dict[str, Any]) -> Decimal:
    """A Session's reported cost; an unreadable figure counts as 0 (the runner's report
    is validated by the CRD schema, so this is an old or hand-edited object)."""
    raw = ((body.get("status") or {}).get("usage") or {}).get("cost", "0")
    try:
        return money(str(raw))
    except ValueError:
        return Decimal(0)


def month_to_date(sessions: Iterable[dict[str, Any]], month: str) -> Decimal:
    """Sum of the costs of the Sessions created in ``month``."""
    return sum(
        (
            session_cost(s)
            for s in sessions
            if str((s.get("metadata") or {}).get("creationTimestamp", "")).startswith(month)
        ),
        Decimal(0),
    )


def policy_status_patch(
    current: dict[str, Any], spend: Decimal, month: str
) -> dict[str, Any] | None:
    """The NamespacePolicy status merge patch, or None when it already says this."""
    value = str(spend.quantize(Decimal("0.01")))
    if current.get("month") == month and current.get("monthToDateSpend") == value:
        return None
    return {"status": {"month": month, "monthToDateSpend": value}}
