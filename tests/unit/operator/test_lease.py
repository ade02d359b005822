"""Leader election decisions (pure) and one candidate against a fake Lease store."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest

from ambient.common.kube.client import ConflictError, Kube
from ambient.operator import lease
from ambient.operator.leader import Elector

T = lease.Timing(duration_seconds=10, renew_deadline_seconds=7, retry_seconds=2)
NOW = datetime(2026, 12, 5, 20, 0, tzinfo=UTC)


def rec(holder: str, transitions: int = 0) -> lease.Record:
    return lease.Record(holder, "2026-12-05T19:59:59.000000Z", transitions, "t0")


def test_nobody_holding_means_take_it() -> None:
    assert lease.decide(None, "a", observed_at=0, now=0, timing=T) is lease.Action.ACQUIRE
    assert lease.decide(rec(""), "a", observed_at=0, now=0, timing=T) is lease.Action.ACQUIRE


def test_the_holder_renews() -> None:
    assert lease.decide(rec("a"), "a", observed_at=0, now=99, timing=T) is lease.Action.RENEW


def test_a_waiter_takes_over_only_after_the_full_term_by_its_own_clock() -> None:
    assert lease.decide(rec("b"), "a", observed_at=100, now=109.9, timing=T) is lease.Action.WAIT
    assert lease.decide(rec("b"), "a", observed_at=100, now=110, timing=T) is lease.Action.ACQUIRE


def test_the_timing_must_let_the_leader_stop_before_anyone_takes_over() -> None:
    with pytest.raises(ValueError, match="retry < renew deadline < lease duration"):
        lease.Timing(duration_seconds=5, renew_deadline_seconds=7, retry_seconds=2)


def test_spec_counts_transitions_and_keeps_the_acquire_time_on_renewal() -> None:
    taken = lease.spec("a", rec("b", 3), NOW, T)
    assert taken["holderIdentity"] == "a"
    assert taken["leaseTransitions"] == 4
    assert taken["acquireTime"] == taken["renewTime"] == "2026-12-05T20:00:00.000000Z"
    assert taken["leaseDurationSeconds"] == 10
    renewed = lease.spec("a", rec("a", 4), NOW, T)
    assert (renewed["leaseTransitions"], renewed["acquireTime"]) == (4, "t0")
    released = lease.spec("a", rec("a", 4), NOW, T, release=True)
    assert (released["holderIdentity"], released["leaseDurationSeconds"]) == ("", 1)


class FakeLeases:
    """One Lease with resourceVersion checks, as the API server keeps it."""

    def __init__(self) -> None:
        self.body: dict[str, Any] | None = None
        self.version = 0

    def get_lease(self, namespace: str, name: str) -> dict[str, Any] | None:
        return copy.deepcopy(self.body)

    def write_lease(
        self,
        namespace: str,
        name: str,
        spec: dict[str, Any],
        resource_version: str | None,
        **metadata: Any,
    ) -> dict[str, Any]:
        current = None if self.body is None else self.body["metadata"]["resourceVersion"]
        if resource_version != current:
            raise ConflictError(409, "changed")
        self.version += 1
        meta = {k: v for k, v in metadata.items() if v}
        self.body = {"metadata": {"resourceVersion": str(self.version), **meta}, "spec": spec}
        return copy.deepcopy(self.body)


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def elector(leases: FakeLeases, me: str, clock: Clock) -> Elector:
    return Elector(
        cast(Kube, leases), "ambient-system", "ambient-operator", me, T,
        monotonic=clock, now=lambda: NOW + timedelta(seconds=clock.t), sleep=lambda _: None,
    )  # fmt: skip


def test_two_candidates_one_leader_and_a_takeover_only_after_the_holder_goes_quiet() -> None:
    leases, clock = FakeLeases(), Clock()
    a, b = elector(leases, "a", clock), elector(leases, "b", clock)
    assert a.try_once() is True
    assert b.try_once() is False  # a holds it
    clock.t = 5
    assert a.try_once() is True  # renewed
    clock.t = 6
    assert b.try_once() is False  # b sees the renewal: its count starts again, at 6
    clock.t = 15.9
    assert b.try_once() is False  # a has gone quiet, but not for a full term by b's clock
    clock.t = 16
    assert b.try_once() is True
    assert leases.body is not None
    assert leases.body["spec"]["holderIdentity"] == "b"
    assert leases.body["spec"]["leaseTransitions"] == 2
    assert a.try_once() is False  # a, back, is now a waiter


def test_a_lost_race_is_not_leadership() -> None:
    leases, clock = FakeLeases(), Clock()
    a = elector(leases, "a", clock)
    real_write = leases.write_lease

    def someone_else_first(*args: Any, **kwargs: Any) -> dict[str, Any]:
        real_write("ambient-system", "ambient-operator", lease.spec("z", None, NOW, T), None)
        return real_write(*args, **kwargs)

    leases.write_lease = someone_else_first  # type: ignore[method-assign]
    assert a.try_once() is False


def test_release_hands_over_at_the_next_look() -> None:
    leases, clock = FakeLeases(), Clock()
    a, b = elector(leases, "a", clock), elector(leases, "b", clock)
    assert a.try_once()
    assert not b.try_once()
    a.release()
    assert b.try_once()  # no waiting out the term


def test_release_reads_again_when_a_renewal_wrote_meanwhile() -> None:
    leases, clock = FakeLeases(), Clock()
    a = elector(leases, "a", clock)
    assert a.try_once()
    real_get = leases.get_lease
    renewed = []

    def get_then_renew(*args: Any) -> dict[str, Any] | None:
        body = real_get(*args)
        if not renewed:  # the renewal thread's write lands between the read and the write
            renewed.append(1)
            assert a.try_once()
        return body

    leases.get_lease = get_then_renew  # type: ignore[method-assign]
    a.release()
    assert renewed
    assert leases.body is not None
    assert leases.body["spec"]["holderIdentity"] == ""
