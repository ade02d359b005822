"""Two operator replicas with leader election on the real API server: one reconciles, the
other waits; SIGKILL the leader in the middle of a burst and the standby takes over within
the Lease's timing (10 s term + 2 s look), and no Session gets a second Job or a repeated
history entry."""

from __future__ import annotations

import json
import time
import uuid

import pytest

pytestmark = pytest.mark.integration

SESSIONS = 80
TAKEOVER_LIMIT_SECONDS = 15


def _holder(cluster, namespace: str, lease: str) -> str:
    try:
        body = cluster.coordination.read_namespaced_lease(lease, namespace)
    except Exception:
        return ""
    return body.spec.holder_identity or ""


def test_the_standby_takes_over_a_killed_leader_without_duplicates(
    cluster, operator, make_operator, namespace, make_session
):
    lease = f"ambient-operator-{uuid.uuid4().hex[:6]}"
    env = {
        "AMBIENT_LEADER_ELECTION": "true",
        "AMBIENT_LEADER_ELECTION_NAMESPACE": namespace,
        "AMBIENT_LEADER_ELECTION_LEASE": lease,
    }
    replicas = {}
    for name in ("a", "b"):
        replicas[name] = make_operator(f"replica-{name}-{lease}")
    operator.stop()  # the run's shared operator does not take part in the election
    try:
        for proc in replicas.values():
            proc.start(extra_env={**env, "HOSTNAME": proc.log_dir.name})
        first = cluster.wait_for("a leader", lambda: _holder(cluster, namespace, lease), timeout=60)
        leader = next(p for p in replicas.values() if first.startswith(f"{p.log_dir.name}-"))
        standby = next(p for p in replicas.values() if p is not leader)

        items = [make_session(f"s{i:03d}") for i in range(SESSIONS)]
        cluster.apply(json.dumps({"apiVersion": "v1", "kind": "List", "items": items}), namespace)
        cluster.wait_for(
            "the leader at work", lambda: len(cluster.jobs(namespace)) >= SESSIONS // 4, timeout=120
        )
        leader.kill()
        killed_at = time.monotonic()
        second = cluster.wait_for(
            "a new leader",
            lambda: (h := _holder(cluster, namespace, lease)) != first and h,
            timeout=60,
            interval=0.1,
        )
        takeover = time.monotonic() - killed_at
        assert second.startswith(f"{standby.log_dir.name}-")
        assert takeover <= TAKEOVER_LIMIT_SECONDS, takeover

        def all_completed():
            listed = cluster.custom.list_namespaced_custom_object(
                "ambient.ai", "v1alpha1", namespace, "sessions"
            )["items"]
            done = [i for i in listed if i.get("status", {}).get("phase") == "Completed"]
            return listed if len(done) == SESSIONS else None

        listed = cluster.wait_for("every Session Completed", all_completed, timeout=300)
        per_session: dict[str, int] = {}
        for job in cluster.jobs(namespace):
            key = job.metadata.labels["ambient.ai/session"]
            per_session[key] = per_session.get(key, 0) + 1
        assert per_session == {f"s{i:03d}": 1 for i in range(SESSIONS)}
        for item in listed:
            ids = [e["id"] for e in item["status"]["history"]]
            assert len(ids) == len(set(ids)), (item["metadata"]["name"], ids)
        print(f"\ntakeover after SIGKILL: {takeover:.1f}s")
        assert "now holds Lease" in standby.logs()
    finally:
        for proc in replicas.values():
            proc.stop()
        operator.start()
