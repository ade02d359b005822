"""The concurrency cap as the controller applies it, with a fake clock."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from ambient.operator.gate import Gate
from ambient.operator.policies import PolicyCache
from ambient.operator.sessions.observe import JobView
from ambient.operator.settings import OperatorSettings
from ambient.operator.state import Key, StateStore

NS = "team-alpha"


class Clock:
    def __init__(self) -> None:
        self.mono = 100.0
        self.timers: list[tuple[float, Callable[[], None]]] = []

    def monotonic(self) -> float:
        return self.mono

    def call_later(self, delay: float, callback: Callable[[], None]) -> None:
        self.timers.append((delay, callback))


def _gate(
    settings: OperatorSettings, cap: int, indexes: dict[str, Any]
) -> tuple[Gate, Clock, list[Key]]:
    clock, woken = Clock(), []
    gate = Gate(
        state=StateStore(),
        clock=clock,  # type: ignore[arg-type]
        settings=settings.model_copy(update={"default_max_concurrent_sessions": cap}),
        policies=PolicyCache(),
        indexes=indexes,
        wake=woken.append,
    )
    return gate, clock, woken


def test_admission_beyond_the_cap_is_refused_in_fifo_order(
    settings: OperatorSettings,
    make_body: Callable[..., dict[str, Any]],
    new_index: Callable[[], Any],
) -> None:
    bodies = [make_body(name=f"s{i}") for i in range(3)]
    sessions = new_index()
    for b in bodies:
        sessions.file(NS, b["metadata"]["name"], b)
    jobs = new_index()
    gate, _, _ = _gate(settings, 2, {"session_index": sessions, "job_index": jobs})
    for body in bodies:
        gate.session_seen(NS, body["metadata"]["name"], finished=False)

    async def main() -> list[bool]:
        return [
            (await gate.admit(NS, b, f"{b['metadata']['name']}-a1", jobs)).admitted for b in bodies
        ]

    assert asyncio.run(main()) == [True, True, False]
    space = gate.state.namespace(NS)
    assert set(space.inflight) == {"s0-a1", "s1-a1"}
    assert space.refused == {"s2"}
    gate.release(NS, "s1-a1")
    assert set(space.inflight) == {"s0-a1"}


def test_a_finished_job_wakes_the_queue_once_per_burst(
    settings: OperatorSettings,
    make_body: Callable[..., dict[str, Any]],
    new_index: Callable[[], Any],
) -> None:
    waiting = make_body(name="waiting")
    sessions = new_index()
    sessions.file(NS, "waiting", waiting)
    jobs = new_index()
    gate, clock, woken = _gate(settings, 1, {"session_index": sessions, "job_index": jobs})
    gate.job_changed(NS, "other-a1", active=True)
    gate.job_changed(NS, "other-a1", active=False)
    assert clock.timers == []  # nobody was refused: nothing to wake
    gate.state.namespace(NS).refused.add("waiting")
    gate.job_changed(NS, "x-a1", active=False)
    gate.job_changed(NS, "y-a1", active=False)
    assert [delay for delay, _ in clock.timers] == [0.05]
    clock.timers.pop()[1]()
    assert woken == [(NS, "waiting")]
    assert not gate.state.namespace(NS).kicked


def test_old_creates_stop_counting(settings: OperatorSettings) -> None:
    jobs: dict[Key, list[JobView]] = {}
    gate, clock, _ = _gate(settings, 1, {"session_index": {}, "job_index": jobs})
    gate.state.namespace(NS).inflight["lost-a1"] = ("lost", clock.mono)
    clock.mono += settings.inflight_seconds + 1
    gate.kick(NS)
    clock.timers.pop()[1]()
    assert gate.state.namespace(NS).inflight == {}


def _budget_gate(
    settings: OperatorSettings, make_body: Callable[..., dict[str, Any]], new_index: Any
) -> tuple[Gate, Clock, list[dict[str, Any]], Callable[[dict[str, Any]], bool]]:
    """The month allows 15.00 and 4.00 is already charged; two Sessions of 10.00
    (make_body's budget) are seen, s0 admitted and s1 refused."""
    from datetime import UTC, datetime  # noqa: PLC0415

    bodies = [make_body(name=f"s{i}", uid=f"u{i}") for i in range(2)]
    sessions = new_index()
    for b in bodies:
        sessions.file(NS, b["metadata"]["name"], b)
    jobs = new_index()
    gate, clock, _ = _gate(settings, 10, {"session_index": sessions, "job_index": jobs})
    clock.now = lambda: datetime(2026, 3, 5, tzinfo=UTC)  # type: ignore[attr-defined]
    gate.policies.keep(
        {
            "metadata": {"name": "p", "namespace": NS},
            "spec": {"models": {"budget": {"monthly": "15.00"}}},
            "status": {
                "month": "2026-03",
                "monthToDateSpend": "4.00",
                "ledger": [{"uid": "gone", "charge": "4.00"}],  # a deleted Session's spend
            },
        }
    )
    for body in bodies:
        gate.session_seen(NS, body["metadata"]["name"], finished=False)

    async def admit_async(body: dict[str, Any]) -> bool:
        return (await gate.admit(NS, body, f"{body['metadata']['name']}-a1", jobs)).admitted

    async def main() -> list[bool]:
        return list(await asyncio.gather(*(admit_async(b) for b in bodies)))

    assert asyncio.run(main()) == [True, False]
    assert gate.state.namespace(NS).refused == {"s1"}
    return gate, clock, bodies, lambda body: asyncio.run(admit_async(body))


def test_budgets_are_reserved_so_sessions_started_together_fit_the_month(
    settings: OperatorSettings,
    make_body: Callable[..., dict[str, Any]],
    new_index: Callable[[], Any],
) -> None:
    """Issue 17, finding 6: two Sessions admitted together cannot each claim what is left:
    only one starts until it finishes. One deleted once finished is charged its budget
    until the ledger knows what it cost."""
    gate, _, bodies, admit = _budget_gate(settings, make_body, new_index)
    gate.indexes["session_index"].unfile(NS, "s0")  # deleted
    gate.session_seen(NS, "s0", finished=True)
    assert not admit(bodies[1])  # held until the ledger knows what s0 cost
    gate.policies.keep(
        {
            "metadata": {"name": "p", "namespace": NS},
            "spec": {"models": {"budget": {"monthly": "15.00"}}},
            "status": {
                "month": "2026-03",
                "monthToDateSpend": "5.00",
                "ledger": [{"uid": "gone", "charge": "4.00"}, {"uid": "u0", "charge": "1.00"}],
            },
        }
    )  # the roll-up: s0 cost 1.00, so 4 + 1 + 10 fits
    assert admit(bodies[1])
    assert gate.state.namespace(NS).settling == {}


@pytest.mark.parametrize(("cost", "fits"), [("0.99", True), ("1.01", False)])
def test_a_finished_sessions_cost_frees_its_budget_without_waiting_for_the_roll_up(
    settings: OperatorSettings,
    make_body: Callable[..., dict[str, Any]],
    new_index: Callable[[], Any],
    cost: str,
    fits: bool,
) -> None:
    """The queued Session is woken when the first finishes, and the first is charged its
    reported cost (the index has it), not the budget it reserved: 4 + cost + 10 <= 15."""
    gate, clock, bodies, admit = _budget_gate(settings, make_body, new_index)
    bodies[0]["status"] = {"phase": "Completed", "usage": {"cost": cost}}
    gate.session_seen(NS, "s0", finished=True)
    assert [delay for delay, _ in clock.timers] == [settings.kick_delay_seconds]
    assert admit(bodies[1]) is fits


def test_only_the_namespaces_own_jobs_count_and_an_orphan_among_them_does(
    settings: OperatorSettings,
    make_body: Callable[..., dict[str, Any]],
    new_index: Callable[[], Any],
) -> None:
    """The cap counts this namespace's unfinished Jobs from the index, found by namespace:
    another namespace's never, and one whose Session is gone (its Job still running) yes."""
    bodies = [make_body(name=f"s{i}") for i in range(2)]
    sessions = new_index()
    for b in bodies:
        sessions.file(NS, b["metadata"]["name"], b)
    jobs = new_index()
    for i in range(3):
        jobs.file("other-team", f"x{i}", JobView(name=f"x{i}-a1", owner_uid="u"))
    jobs.file(NS, "gone", JobView(name="gone-a1", owner_uid="u"))
    gate, _, _ = _gate(settings, 2, {"session_index": sessions, "job_index": jobs})
    gate.job_changed(NS, "gone-a1", active=True)
    for body in bodies:
        gate.session_seen(NS, body["metadata"]["name"], finished=False)

    async def main() -> list[bool]:
        return [
            (await gate.admit(NS, b, f"{b['metadata']['name']}-a1", jobs)).admitted for b in bodies
        ]

    assert asyncio.run(main()) == [True, False]
