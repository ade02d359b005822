"""Per-Session backoff on the real API server: a Session whose Job cannot be created (a
ResourceQuota allows no Jobs in its namespace) is retried less and less often, shows
condition ReconcileFailing with the count and the API server's own refusal, and goes on
to Completed as soon as the quota allows it, the condition then cleared."""

from __future__ import annotations

from typing import Any

import pytest

pytestmark = pytest.mark.integration


def _condition(body: dict[str, Any]) -> dict[str, Any] | None:
    for condition in body.get("status", {}).get("conditions") or []:
        if condition["type"] == "ReconcileFailing":
            return dict(condition)
    return None


def test_a_session_that_cannot_get_its_job_backs_off_then_recovers(
    cluster, operator, namespace, make_session
):
    cluster.apply(
        {
            "apiVersion": "v1",
            "kind": "ResourceQuota",
            "metadata": {"name": "no-jobs"},
            "spec": {"hard": {"count/jobs.batch": "0"}},
        },
        namespace,
    )
    cluster.apply(make_session("blocked"), namespace)

    def failing_twice() -> dict[str, Any] | None:
        condition = _condition(cluster.session(namespace, "blocked"))
        if condition and condition["status"] == "True" and condition["message"][:2] == "2 ":
            return condition
        return None

    condition = cluster.wait_for("two failed reconciles shown", failing_twice, timeout=90)
    assert condition["reason"] == "RefusedError"
    assert "exceeded quota" in condition["message"]
    # The second retry waits 10 s (+-20%): no third failure is shown this early.
    assert condition["message"].startswith("2 consecutive")
    assert "next attempt in" in condition["message"]
    assert cluster.jobs(namespace) == []

    cluster.kubectl("delete", "resourcequota", "no-jobs", "-n", namespace)
    body = cluster.wait_phase(namespace, "blocked", "Completed", timeout=120)
    cleared = _condition(body)
    assert cleared is not None
    assert (cleared["status"], cleared["reason"]) == ("False", "Reconciled")
    # The one condition applied on its own left the rest of the status to the operator.
    events = [e["event"] for e in body["status"]["history"]]
    assert events[0] == "SessionCreated" and events[-1] == "WorkloadSucceeded"
    assert len(cluster.jobs(namespace)) == 1
