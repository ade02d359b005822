"""The namespace's spend as a durable ledger, on the real API server with the real
operator (issue 17, finding 6): deleting Sessions does not lower the month's spend, a
Session's usage cannot be lowered (the CRD's CEL rule, so it holds without the admission
webhook too), and a Session that has not finished is charged its budget (reserved)."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

pytestmark = pytest.mark.integration


def _session(name: str, budget: str) -> dict[str, Any]:
    return {
        "apiVersion": "ambient.ai/v1alpha1",
        "kind": "Session",
        "metadata": {"name": name},
        "spec": {
            "trigger": {"source": "manual", "event": "test", "payload": {}},
            "framework": {"type": "script", "config": {"command": ["true"]}},
            "policy": {"modelConstraints": {"budget": budget}},
        },
    }


def _report(cluster: Any, namespace: str, name: str, cost: str) -> None:
    """What the runner does: report usage on its Session's status."""
    cluster.custom.patch_namespaced_custom_object_status(
        "ambient.ai",
        "v1alpha1",
        namespace,
        "sessions",
        name,
        {"status": {"usage": {"cost": cost, "inputTokens": 10, "outputTokens": 10}}},
    )


def _policy_status(cluster: Any, namespace: str) -> dict[str, Any]:
    body = cluster.custom.get_namespaced_custom_object(
        "ambient.ai", "v1alpha1", namespace, "namespacepolicies", "policy"
    )
    return dict(body.get("status") or {})


def _roll_up(cluster: Any, namespace: str, spend: str) -> dict[str, Any]:
    """Touch the policy (its changes roll the spend up at once) until it says ``spend``."""

    def check() -> dict[str, Any] | None:
        cluster.kubectl(
            "annotate", "namespacepolicy", "policy", "-n", namespace, "--overwrite",
            f"test/touched={time.monotonic_ns()}",
        )  # fmt: skip
        time.sleep(0.5)
        status = _policy_status(cluster, namespace)
        return status if status.get("monthToDateSpend") == spend else None

    result: dict[str, Any] = cluster.wait_for(f"the spend to read {spend}", check, 60, 0.5)
    return result


def test_spend_is_a_ledger_that_deleting_sessions_does_not_lower(
    cluster: Any, operator: Any, namespace: str
) -> None:
    cluster.apply(
        {
            "apiVersion": "ambient.ai/v1alpha1",
            "kind": "NamespacePolicy",
            "metadata": {"name": "policy"},
            "spec": {"models": {"budget": {"monthly": "100.00"}}},
        },
        namespace,
    )
    for name in ("a", "b"):
        cluster.apply(_session(name, "10.00"), namespace)
    for name in ("a", "b"):
        cluster.wait_phase(namespace, name, "Completed")
    _report(cluster, namespace, "a", "3.00")
    _report(cluster, namespace, "b", "4.00")
    status = _roll_up(cluster, namespace, "7.00")
    uids = {cluster.session(namespace, n)["metadata"]["uid"] for n in ("a", "b")}
    assert {e["uid"] for e in status["ledger"]} == uids

    # The runner (or anyone) lowering a reported figure is refused by the schema itself.
    with pytest.raises(ApiException) as lowered:
        _report(cluster, namespace, "b", "0.01")
    assert lowered.value.status == 422
    assert "status.usage only grows" in json.loads(lowered.value.body)["message"]
    assert cluster.session(namespace, "b")["status"]["usage"]["cost"] == "4.00"

    # Deleting the Sessions takes nothing back.
    for name in ("a", "b"):
        cluster.custom.delete_namespaced_custom_object(
            "ambient.ai", "v1alpha1", namespace, "sessions", name
        )
    # A Session waiting for approval has not finished: its budget is held meanwhile.
    waiting = _session("c", "20.00")
    waiting["spec"]["policy"]["approvalRequired"] = True
    cluster.apply(waiting, namespace)
    cluster.wait_for(
        "c to await approval",
        lambda: (
            cluster.session(namespace, "c").get("status", {}).get("reason") == "AwaitingApproval"
        ),
    )
    status = _roll_up(cluster, namespace, "27.00")
    assert len(status["ledger"]) == 3
    # Cancelled before it spent anything: the reservation is released; a and b stay.
    cluster.custom.patch_namespaced_custom_object(
        "ambient.ai", "v1alpha1", namespace, "sessions", "c", {"spec": {"cancel": True}}
    )
    cluster.wait_phase(namespace, "c", "Failed")
    _roll_up(cluster, namespace, "7.00")


def test_sessions_started_together_cannot_each_claim_what_is_left(
    cluster: Any, operator: Any, namespace: str
) -> None:
    """15.00 a month and two Sessions of 10.00 created at once: the operator's gate
    reserves the first's budget, so the second waits (Queued) until the ledger shows
    what the first really cost, then runs. The one waiting reserves nothing meanwhile:
    charged too, both would read as over the budget and be stopped."""
    cluster.apply(
        {
            "apiVersion": "ambient.ai/v1alpha1",
            "kind": "NamespacePolicy",
            "metadata": {"name": "policy"},
            "spec": {"models": {"budget": {"monthly": "15.00"}}},
        },
        namespace,
    )
    cluster.wait_for(
        "the policy to be seen", lambda: _policy_status(cluster, namespace).get("month"), 30
    )
    for name in ("one", "two"):
        cluster.apply(_session(name, "10.00"), namespace)

    def first_done() -> str | None:
        for name in ("one", "two"):
            if cluster.session(namespace, name).get("status", {}).get("phase") == "Completed":
                return name
        return None

    first = cluster.wait_for("one Session to complete", first_done, 60)
    other = "two" if first == "one" else "one"
    held = cluster.session(namespace, other)
    events = [e["event"] for e in held["status"].get("history", [])]
    assert "Queued" in events, events  # it waited for the budget, not for a slot (cap 50)
    assert not any(e == "WorkloadCreated" for e in events[: events.index("Queued")])
    cluster.wait_phase(namespace, other, "Completed")
    # Both cost 0.00, and the one that waited in the queue was never charged the other's
    # share: the ledger has both, and nothing is left reserved.
    status = _roll_up(cluster, namespace, "0.00")
    uids = {cluster.session(namespace, n)["metadata"]["uid"] for n in ("one", "two")}
    assert {e["uid"]: e["charge"] for e in status["ledger"]} == dict.fromkeys(uids, "0.00")
