"""Operator shards on the real API server: two shard processes over 100 namespaces, each
Session reconciled by the one shard that owns its namespace; then the shard map goes from 2
to 3 while Sessions are being created, a third shard starts, and the first two hand over
(stop, release, start again with the new count). No namespace is reconciled by two shards
at once or by a shard that does not own it, none is left without one (every Session gets
its Job), and no Session gets two Jobs or a repeated history entry.

Who reconciled what is read from each process's own log: its audit records (one per history
entry it wrote, with the time) and its "serving shard i/N" and "starting again" lines."""

from __future__ import annotations

import json
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

import pytest

from ambient.operator import sharding

# Three operator processes, 300 Sessions and two start-ups each on a shared machine.
pytestmark = [pytest.mark.integration, pytest.mark.timeout(1500)]

NAMESPACES = 100
WAVES = 3  # one Session per namespace in each: before, during and after the change


def _time(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _shares(log: str) -> tuple[list[tuple[float, float, sharding.Share]], list[dict[str, Any]]]:
    """From one shard process's log: the intervals it served each share, and its audit
    records."""
    spans: list[tuple[float, float, sharding.Share]] = []
    audits: list[dict[str, Any]] = []
    current: tuple[float, sharding.Share] | None = None
    lines = []
    for line in log.splitlines():
        try:
            lines.append(json.loads(line))
        except ValueError:
            continue
    for obj in sorted(
        (o for o in lines if isinstance(o, dict)),
        key=lambda o: _time(o.get("timestamp") or o.get("logTime") or "1970-01-01T00:00:00Z"),
    ):
        if "audit" in obj:
            audits.append(obj["audit"])
            continue
        event = str(obj.get("event", ""))
        if event.startswith("shards: serving shard "):
            share = sharding.Share.parse(event.rsplit(" ", 1)[1])
            assert share is not None
            current = (_time(obj["timestamp"]), share)
        elif event.startswith("shards: starting again") and current is not None:
            spans.append((current[0], _time(obj["timestamp"]), current[1]))
            current = None
    if current is not None:
        spans.append((current[0], float("inf"), current[1]))
    return spans, audits


def _declared(cluster, namespace: str, lease: str) -> str:
    try:
        body = cluster.coordination.read_namespaced_lease(lease, namespace)
    except Exception:
        return ""
    if not body.spec.holder_identity:
        return ""
    return (body.metadata.annotations or {}).get(sharding.ANNOTATION_SHARD, "")


def test_two_then_three_shards_split_100_namespaces_without_overlap(
    cluster, operator, make_operator, namespace, make_session
):
    run = uuid.uuid4().hex[:6]
    spaces = [f"t-shard-{run}-{i:03d}" for i in range(NAMESPACES)]
    shard_map, lease = f"shards-{run}", f"ambient-operator-{run}"
    cluster.core.create_namespaced_config_map(
        namespace, {"metadata": {"name": shard_map}, "data": {"count": "2"}}
    )
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda n: cluster.core.create_namespace({"metadata": {"name": n}}), spaces))

    def create_wave(wave: int, pause: float = 0.0) -> None:
        def one(space: str) -> None:
            body = make_session(f"w{wave}")
            body["metadata"]["labels"] = {"test-run": run}  # listed by it, not by namespace
            cluster.custom.create_namespaced_custom_object(
                "ambient.ai", "v1alpha1", space, "sessions", body
            )
            time.sleep(pause)

        with ThreadPoolExecutor(4) as pool:
            list(pool.map(one, spaces))

    shards = {i: make_operator(f"shard-{i}-{run}") for i in range(3)}

    def start(i: int) -> None:
        env = {
            "AMBIENT_SHARD_MAP": shard_map,
            "AMBIENT_SHARD_INDEX": str(i),
            "AMBIENT_LEADER_ELECTION_NAMESPACE": namespace,
            "AMBIENT_LEADER_ELECTION_LEASE": f"{lease}-{i}",
            "HOSTNAME": shards[i].log_dir.name,
        }
        shards[i].start(extra_env=env)

    def settled(count: int):
        def check():
            declared = [_declared(cluster, namespace, f"{lease}-{i}") for i in range(count)]
            serving = [shards[i].logs().count(f"serving shard {i}/{count}") for i in range(count)]
            return declared == [f"{i}/{count}" for i in range(count)] and all(serving)

        return check

    operator.stop()  # the run's shared operator would own every namespace
    try:
        start(0)
        start(1)
        cluster.wait_for("two shards serving", settled(2), timeout=120)
        create_wave(0)
        # The count changes while the second wave is being created.
        during = threading.Thread(target=create_wave, args=(1, 0.3))
        during.start()
        time.sleep(2)
        cluster.core.patch_namespaced_config_map(shard_map, namespace, {"data": {"count": "3"}})
        start(2)
        cluster.wait_for("three shards serving", settled(3), timeout=180)
        during.join(timeout=300)
        create_wave(2)

        def all_completed():
            items = cluster.custom.list_cluster_custom_object(
                "ambient.ai", "v1alpha1", "sessions", label_selector=f"test-run={run}"
            )
            return (
                sum(
                    i["metadata"]["namespace"] in spaces
                    and i.get("status", {}).get("phase") == "Completed"
                    for i in items["items"]
                )
                == NAMESPACES * WAVES
            )

        cluster.wait_for("every Session Completed", all_completed, timeout=600, interval=2)

        _assert_one_job_and_clean_history_each(cluster, spaces)
        moved = _assert_each_entry_by_its_owner(shards, spaces)
        print(
            f"\nnamespaces per shard at 3: "
            f"{[sum(sharding.owner(n, 3) == i for n in spaces) for i in range(3)]}, "
            f"moved to shard 2: {len(moved)}"
        )
    finally:
        for proc in shards.values():
            proc.stop()
        operator.start()
        for space in spaces:
            cluster.kubectl("delete", "namespace", space, "--wait=false", check=False)


def _assert_one_job_and_clean_history_each(cluster, spaces: list[str]) -> None:
    for space in spaces:
        jobs = [j.metadata.labels["ambient.ai/session"] for j in cluster.jobs(space)]
        assert sorted(jobs) == [f"w{w}" for w in range(WAVES)], (space, jobs)
        items = cluster.custom.list_namespaced_custom_object(
            "ambient.ai", "v1alpha1", space, "sessions"
        )["items"]
        for item in items:
            ids = [e["id"] for e in item["status"]["history"]]
            assert len(ids) == len(set(ids)), (space, item["metadata"]["name"], ids)


def _assert_each_entry_by_its_owner(shards, spaces: list[str]) -> list[str]:
    """Check who served what and when from the logs; the namespaces that moved."""
    spans: dict[int, list[tuple[float, float, sharding.Share]]] = {}
    audits: dict[int, list[dict[str, Any]]] = {}
    for i, proc in shards.items():
        spans[i], audits[i] = _shares(proc.logs())
    # Shards 0 and 1 served 2, then handed over and served 3; shard 2 served only 3.
    assert [s.annotation() for *_, s in spans[0]] == ["0/2", "0/3"], spans[0]
    assert [s.annotation() for *_, s in spans[1]] == ["1/2", "1/3"], spans[1]
    assert [s.annotation() for *_, s in spans[2]] == ["2/3"], spans[2]
    # No moment when two counts were served.
    flat = [span for i in spans for span in spans[i]]
    for a in flat:
        for b in flat:
            if a[2].count != b[2].count:
                assert a[1] <= b[0] or b[1] <= a[0], (a, b)
    # Every history entry a shard wrote (its audit record) is in a namespace it owned at
    # that moment, and every namespace of ours was written to.
    written: dict[str, set[int]] = {}
    for i in shards:
        for record in audits[i]:
            if record["namespace"] not in spaces:
                continue
            at = _time(record["timestamp"])
            share = next((s for begin, end, s in spans[i] if begin <= at <= end), None)
            assert share is not None, (i, record)
            assert share.owns(record["namespace"]), (i, share, record)
            written.setdefault(record["namespace"], set()).add(i)
    assert set(written) == set(spaces)
    # Jump hashing: growing to 3 moves namespaces only to the new shard.
    moved = [n for n in spaces if sharding.owner(n, 2) != sharding.owner(n, 3)]
    assert moved, "some namespaces move to the third shard"
    # A moved namespace was written by its old owner (if it reached the first waves before
    # the hand-off: on a loaded machine it may not have) and then by the new shard only.
    assert all(written[n] <= {sharding.owner(n, 2), 2} and 2 in written[n] for n in moved), {
        n: written[n] for n in moved
    }
    assert all(written[n] == {sharding.owner(n, 3)} for n in spaces if n not in moved)
    return moved
