"""One shard's hand-off gate and its elector against a fake API server that keeps Leases
and the shard map with resourceVersion checks."""

from __future__ import annotations

import copy
import threading
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from ambient.common.kube.client import ConflictError, Kube
from ambient.operator import lease, sharding
from ambient.operator.leader import Elector
from ambient.operator.sharding import Share, Verdict
from ambient.operator.shards import Gate

T = lease.Timing(duration_seconds=10, renew_deadline_seconds=7, retry_seconds=2)
NOW = datetime(2026, 12, 5, 20, 0, tzinfo=UTC)
MAP = "ambient-operator-shards"


class FakeApi:
    def __init__(self, count: int | None) -> None:
        self.leases: dict[str, dict[str, Any]] = {}
        self.count = count
        self.version = 0

    def get_configmap(self, namespace: str, name: str) -> dict[str, Any] | None:
        if name != MAP or self.count is None:
            return None
        return {"data": {"count": str(self.count)}}

    def get_lease(self, namespace: str, name: str) -> dict[str, Any] | None:
        return copy.deepcopy(self.leases.get(name))

    def write_lease(
        self,
        namespace: str,
        name: str,
        spec: dict[str, Any],
        resource_version: str | None,
        *,
        labels: dict[str, str] | None = None,
        annotations: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        current = self.leases.get(name)
        if resource_version != (
            None if current is None else current["metadata"]["resourceVersion"]
        ):
            raise ConflictError(409, "changed")
        self.version += 1
        meta = {"name": name, "resourceVersion": str(self.version)}
        meta |= {"labels": labels or {}, "annotations": annotations or {}}
        self.leases[name] = {"metadata": meta, "spec": spec}
        return copy.deepcopy(self.leases[name])

    def list_leases(self, namespace: str, selector: str) -> list[dict[str, Any]]:
        key, _, value = selector.partition("=")
        return [
            copy.deepcopy(b)
            for b in self.leases.values()
            if (b["metadata"].get("labels") or {}).get(key) == value
        ]


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def shard(api: FakeApi, index: int, count: int, clock: Clock) -> tuple[Elector, Gate, Share]:
    """A shard's leader as main() makes it: its share declared, its Lease held."""
    name = f"ambient-operator-shard-{index}"
    elector = Elector(
        cast(Kube, api), "ambient", name, f"pod-{index}-{count}", T,
        monotonic=clock, now=lambda: NOW + timedelta(seconds=clock.t), sleep=lambda _: None,
    )  # fmt: skip
    gate = Gate(
        cast(Kube, api), "ambient", MAP, index=index, my_lease=name, timing=T, monotonic=clock
    )
    share = Share(index, count)
    elector.labels = {sharding.LABEL_MAP: MAP}
    elector.annotations = {sharding.ANNOTATION_SHARD: share.annotation()}
    assert elector.try_once()
    return elector, gate, share


def test_shards_of_one_count_serve_and_a_new_count_waits_for_the_old_to_hand_over() -> None:
    api, clock = FakeApi(2), Clock()
    old = [shard(api, i, 2, clock) for i in range(2)]
    assert [g.verdict(s) for _, g, s in old] == [Verdict.SERVE, Verdict.SERVE]
    api.count = 3
    new_elector, new_gate, new_share = shard(api, 2, 3, clock)
    assert new_gate.verdict(new_share) is Verdict.WAIT  # shards 0 and 1 still serve 2
    assert [g.verdict(s) for _, g, s in old] == [Verdict.RESTART, Verdict.RESTART]
    old[0][0].release()
    assert new_gate.verdict(new_share) is Verdict.WAIT  # shard 1 has not let go yet
    old[1][0].release()
    restarted = [shard(api, i, 3, clock) for i in range(2)]
    assert new_gate.verdict(new_share) is Verdict.SERVE
    assert [g.verdict(s) for _, g, s in restarted] == [Verdict.SERVE, Verdict.SERVE]
    assert new_elector.try_once()


def test_a_killed_shard_blocks_the_hand_off_only_until_its_term_ran_out_unrenewed() -> None:
    api, clock = FakeApi(2), Clock()
    shard(api, 0, 2, clock)  # killed: never renews, never releases
    api.count = 1
    # The new count's shard 0 has the same Lease: it waits for it as any candidate does.
    elector = Elector(
        cast(Kube, api), "ambient", "ambient-operator-shard-0", "new", T,
        monotonic=clock, now=lambda: NOW, sleep=lambda _: None,
    )  # fmt: skip
    assert elector.try_once() is False
    clock.t = 10
    assert elector.try_once() is True  # the dead holder's term ran out by our clock


def test_a_dead_lease_of_another_index_stops_counting_after_its_term() -> None:
    api, clock = FakeApi(2), Clock()
    shard(api, 2, 3, clock)  # a shard of an older count, killed
    _, gate, share = shard(api, 0, 2, clock)
    assert gate.verdict(share) is Verdict.WAIT
    clock.t = 9.9
    assert gate.verdict(share) is Verdict.WAIT
    clock.t = 10
    assert gate.verdict(share) is Verdict.SERVE


def test_no_map_means_nobody_serves() -> None:
    api, clock = FakeApi(None), Clock()
    _, gate, share = shard(api, 0, 1, clock)
    assert gate.verdict(share) is Verdict.WAIT


def test_wait_to_serve_returns_restart_when_the_map_moves_while_waiting() -> None:
    api, clock = FakeApi(2), Clock()
    shard(api, 1, 3, clock)  # a live shard of another count keeps shard 0 waiting
    _, gate, share = shard(api, 0, 2, clock)
    looks = []

    def sleep(_: float) -> None:
        looks.append(1)
        if len(looks) == 3:
            api.count = 3

    gate._sleep = sleep
    assert gate.wait_to_serve(share) is Verdict.RESTART
    assert len(looks) == 3


def test_the_watch_stops_the_shard_when_the_map_changes() -> None:
    api = FakeApi(2)
    fast = lease.Timing(duration_seconds=0.3, renew_deadline_seconds=0.2, retry_seconds=0.01)
    gate = Gate(cast(Kube, api), "ambient", MAP, index=0, my_lease="s0", timing=fast)
    stopped = threading.Event()
    thread = gate.watch(Share(0, 2), stopped.set)
    assert not stopped.wait(0.1)
    api.count = 3
    assert stopped.wait(5)
    thread.join(5)
    gate.close()
