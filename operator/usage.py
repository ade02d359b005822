"""Pure roll-up of a namespace's month-to-date spend from its Sessions' status.usage.

A Session's spend counts in the month (UTC) it was created: a Session that runs across
midnight at the month's end is charged to the month it started in, so a figure never
moves between months after the fact.

The spend is a durable ledger in the NamespacePolicy's status (issue 17, finding 6): one
entry per Session uid of the month, whose charge only grows. Deleting a Session leaves
its entry; a Session the operator has let start (or holds for an approver) is charged at
least its budget until it finishes (reserved), so Sessions running at once cannot each
claim what is left of the month. One that waits in the queue, or that the operator has
not written yet, reserves nothing: charging it would let two Sessions created together
each hold the other out of the budget (the gate's own claims cover an admitted Session
until its status says so). Usage itself only grows (the CRD's CEL rule and the
admission webhook).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from ambient.crds.models import money
from ambient.operator.sessions.lifecycle import QUEUED_REASON


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


FINISHED = ("Completed", "Failed")


def reserves(status: dict[str, Any]) -> bool:
    """Whether a Session holds its budget: it has not finished, and the operator has
    written it past the queue (admitted, running, retrying or awaiting approval)."""
    phase = status.get("phase")
    return bool(phase) and phase not in FINISHED and status.get("reason") != QUEUED_REASON


def charge(body: dict[str, Any]) -> Decimal:
    """What a Session is charged now: its reported cost, and while it holds a
    reservation (``reserves``), at least its budget."""
    cost = session_cost(body)
    if not reserves(body.get("status") or {}):
        return cost
    raw = (((body.get("spec") or {}).get("policy") or {}).get("modelConstraints") or {}).get(
        "budget"
    )
    try:
        budget = money(str(raw)) if raw is not None else Decimal(0)
    except ValueError:
        budget = Decimal(0)
    return max(cost, budget)


def ledger(
    current: dict[str, Any], sessions: Iterable[dict[str, Any]], month: str
) -> dict[str, Decimal]:
    """The month's ledger, uid -> charge: what ``current`` (the policy status) recorded
    for this month, raised by what the Sessions created this month are charged now.
    A Session gone keeps its entry; an entry only grows, except that a finished Session's
    reservation becomes its cost."""
    out: dict[str, Decimal] = {}
    if current.get("month") == month:
        for entry in current.get("ledger") or []:
            try:
                out[str(entry["uid"])] = money(str(entry["charge"]))
            except (KeyError, TypeError, ValueError):
                continue
    for body in sessions:
        meta = body.get("metadata") or {}
        uid = str(meta.get("uid") or "")
        if not uid or not str(meta.get("creationTimestamp", "")).startswith(month):
            continue
        now = charge(body)
        # A Session that holds no reservation (finished, or waiting in the queue) is
        # charged its cost, which never goes down, so neither does what was recorded as
        # cost; a reservation recorded earlier is released.
        held = reserves(body.get("status") or {})
        out[uid] = max(out.get(uid, Decimal(0)), now) if held else now
    return out


def ledger_patch(
    current: dict[str, Any], entries: dict[str, Decimal], month: str
) -> dict[str, Any] | None:
    """The NamespacePolicy status merge patch for a ledger, or None when it says this
    already. The list is replaced whole (a merge patch replaces lists)."""
    spend = sum(entries.values(), Decimal(0))
    value = str(spend.quantize(Decimal("0.01")))
    rows = [
        {"uid": uid, "charge": str(amount.quantize(Decimal("0.01")))}
        for uid, amount in sorted(entries.items())
    ]
    if (
        current.get("month") == month
        and current.get("monthToDateSpend") == value
        and (current.get("ledger") or []) == rows
    ):
        return None
    return {"status": {"month": month, "monthToDateSpend": value, "ledger": rows}}


def reservation_fits(
    monthly: Decimal | None,
    ledger_entries: Mapping[str, Decimal],
    claims: Mapping[str, Decimal],
    uid: str,
    budget: Decimal,
) -> bool:
    """Whether a Session may start with ``budget`` reserved: what the month's ledger
    charges, raised by the budgets the gate has handed to unfinished Sessions since (the
    ledger sees them only at the next roll-up), plus this budget, fits ``monthly``. The
    Session's own entry is replaced by its budget. No monthly budget: always."""
    if monthly is None:
        return True
    committed = dict(ledger_entries)
    for other, amount in claims.items():
        committed[other] = max(committed.get(other, Decimal(0)), amount)
    committed.pop(uid, None)
    return sum(committed.values(), Decimal(0)) + budget <= monthly
