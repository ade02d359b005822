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


# --- the durable ledger (issue 17, finding 6) ---------------------------------------------


def _session(uid: str, cost: str, *, phase: str = "Completed", budget: str | None = None) -> dict:
    body: dict = {
        "metadata": {"uid": uid, "creationTimestamp": "2026-03-02T00:00:00Z"},
        "spec": {"policy": {"modelConstraints": {"budget": budget}} if budget else {}},
        "status": {"phase": phase, "usage": {"cost": cost}},
    }
    return body


def test_deleting_a_session_does_not_lower_the_spend():
    month = "2026-03"
    first = usage.ledger({}, [_session("a", "5.00"), _session("b", "2.00")], month)
    patch = usage.ledger_patch({}, first, month)
    assert patch is not None and patch["status"]["monthToDateSpend"] == "7.00"
    status = patch["status"]
    after = usage.ledger(status, [_session("b", "2.00")], month)  # "a" was deleted
    assert usage.ledger_patch(status, after, month) is None  # nothing to change: 7.00 stays


def test_an_unfinished_session_is_charged_its_budget_until_it_finishes():
    month = "2026-03"
    running = _session("r", "0.50", phase="Running", budget="10.00")
    held = usage.ledger({}, [running], month)
    assert held == {"r": Decimal("10.00")}  # reserved: another Session cannot claim it
    status = usage.ledger_patch({}, held, month)["status"]
    done = usage.ledger(status, [_session("r", "3.00", budget="10.00")], month)
    assert done == {"r": Decimal("3.00")}  # the reservation becomes the cost
    # Deleted while running: the reservation stays charged (nothing it spent is lost).
    assert usage.ledger(status, [], month) == {"r": Decimal("10.00")}


def test_a_session_reserves_its_budget_only_once_past_the_queue():
    """Two Sessions created together where only one fits: charging the one still queued
    (or not yet written) would make the ledger hold both out, and over a monthly budget
    that fits one it read as spent (a CI failure)."""
    month = "2026-03"
    queued = _session("q", "0", phase="Pending", budget="10.00")
    queued["status"]["reason"] = "Queued"
    unseen = _session("u", "0", budget="10.00")
    del unseen["status"]
    awaiting = _session("w", "0", phase="Pending", budget="10.00")
    awaiting["status"]["reason"] = "AwaitingApproval"
    assert usage.ledger({}, [queued, unseen, awaiting], month) == {
        "q": Decimal(0),
        "u": Decimal(0),
        "w": Decimal("10.00"),  # held for the approver
    }
    # A reservation recorded while it ran is released when it waits in the queue again
    # (a retry); what it reported stays.
    status = {"month": month, "ledger": [{"uid": "q", "charge": "10.00"}]}
    queued["status"]["usage"]["cost"] = "1.50"
    assert usage.ledger(status, [queued], month) == {"q": Decimal("1.50")}


def test_a_new_month_starts_a_new_ledger():
    status = {
        "month": "2026-02",
        "monthToDateSpend": "9.00",
        "ledger": [{"uid": "x", "charge": "9.00"}],
    }
    assert usage.ledger(status, [], "2026-03") == {}
    patch = usage.ledger_patch(status, {}, "2026-03")
    assert patch == {"status": {"month": "2026-03", "monthToDateSpend": "0.00", "ledger": []}}


def test_a_reservation_fits_what_the_ledger_and_the_claims_leave():
    ledger = {"done": Decimal("4.00"), "me": Decimal("0.50")}
    claims = {"running": Decimal("5.00"), "done": Decimal("1.00")}  # the ledger's 4 wins
    # 4 + 5 + my 6 (my own 0.50 is replaced by my budget) = 15
    assert usage.reservation_fits(Decimal("15.00"), ledger, claims, "me", Decimal("6.00"))
    assert not usage.reservation_fits(Decimal("14.99"), ledger, claims, "me", Decimal("6.00"))
    assert usage.reservation_fits(None, ledger, claims, "me", Decimal("1000"))
