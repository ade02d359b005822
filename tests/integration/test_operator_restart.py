"""Idempotence: SIGKILL the operator mid-reconcile, restart it, and nothing is duplicated."""

from __future__ import annotations

import time

import pytest

pytestmark = pytest.mark.integration

SESSIONS = 24


def test_sigkill_mid_reconcile_creates_no_duplicates(cluster, operator, namespace, make_session):
    operator.kill()
    for i in range(SESSIONS):
        cluster.apply(make_session(f"s{i:02d}"), namespace)
    try:
        # Kill it several times while it works through the Sessions, at different points.
        for delay in (1.0, 1.7, 2.5, 3.5):
            operator.start()
            time.sleep(delay)
            operator.kill()
    finally:
        operator.start()

    def all_done():
        items = cluster.custom.list_namespaced_custom_object(
            "ambient.ai", "v1alpha1", namespace, "sessions"
        )["items"]
        phases = [i.get("status", {}).get("phase") for i in items]
        return items if phases.count("Completed") == SESSIONS else None

    items = cluster.wait_for("every Session Completed", all_done, timeout=180)
    jobs = cluster.jobs(namespace)
    per_session: dict[str, int] = {}
    for job in jobs:
        key = job.metadata.labels["ambient.ai/session"]
        per_session[key] = per_session.get(key, 0) + 1
    assert per_session == {f"s{i:02d}": 1 for i in range(SESSIONS)}
    for item in items:
        history = item["status"]["history"]
        ids = [e["id"] for e in history]
        assert len(ids) == len(set(ids)), ids
        assert [e["seq"] for e in history] == list(range(len(history)))
        assert [e["event"] for e in history] == [
            "SessionCreated",
            "WorkloadCreated",
            "WorkloadStarted",
            "WorkloadSucceeded",
        ], item["metadata"]["name"]
