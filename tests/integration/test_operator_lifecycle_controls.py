"""Lifecycle controls on the real API server: the concurrency cap and its FIFO queue,
cancel, timeouts, approval expiry, retries and policy changes reaching running Sessions."""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from kubernetes import watch

pytestmark = pytest.mark.integration

G, V = "ambient.ai", "v1alpha1"


def _policy(cluster, namespace: str, spec: dict[str, Any]) -> None:
    body = {
        "apiVersion": f"{G}/{V}",
        "kind": "NamespacePolicy",
        "metadata": {"name": "policy"},
        "spec": spec,
    }
    new = not cluster.kubectl(
        "get", "namespacepolicy", "policy", "-n", namespace, check=False
    ).stdout.strip()
    cluster.apply(body, namespace)
    if new:
        # The operator's usage roll-up stamps the month on a policy it has seen: Sessions
        # created before that would be planned without the policy (a watch is a watch).
        cluster.wait_for(
            "the operator to see the new policy",
            lambda: (
                cluster.custom.get_namespaced_custom_object(
                    G, V, namespace, "namespacepolicies", "policy"
                )
                .get("status", {})
                .get("month")
            ),
        )


def _session(
    name: str,
    *,
    annotations: dict[str, str] | None = None,
    approval: bool = False,
    models: list[str] | None = None,
) -> dict[str, Any]:
    return {
        "apiVersion": f"{G}/{V}",
        "kind": "Session",
        "metadata": {"name": name, "annotations": annotations or {}},
        "spec": {
            "trigger": {"source": "manual", "event": "test", "payload": {"n": 1}},
            "framework": {"type": "script", "config": {"command": ["true"]}},
            "policy": {
                "approvalRequired": approval,
                "modelConstraints": {"allowed": models or []},
            },
        },
    }


def _create(cluster, namespace: str, body: dict[str, Any]) -> None:
    cluster.custom.create_namespaced_custom_object(G, V, namespace, "sessions", body)


def _sessions(cluster, namespace: str) -> list[dict[str, Any]]:
    return cluster.custom.list_namespaced_custom_object(G, V, namespace, "sessions")["items"]


def _status(cluster, namespace: str, name: str) -> dict[str, Any]:
    return cluster.session(namespace, name).get("status", {})


def _wait_reason(cluster, namespace: str, name: str, reason: str, timeout: float = 90) -> Any:
    return cluster.wait_for(
        f"{name} reason {reason}",
        lambda: (s := _status(cluster, namespace, name)).get("reason") == reason and s,
        timeout,
    )


def _events(status: dict[str, Any]) -> list[str]:
    return [e["event"] for e in status.get("history", [])]


def _cancel(cluster, namespace: str, name: str, who: str) -> None:
    cluster.kubectl(
        "patch",
        "session",
        name,
        "-n",
        namespace,
        "--type",
        "merge",
        "-p",
        json.dumps(
            {
                "metadata": {"annotations": {"ambient.ai/cancelled-by": who}},
                "spec": {"cancel": True},
            }
        ),
    )


class JobSampler:
    """Follows the namespace's Jobs with a watch and records the most unfinished at once."""

    def __init__(self, cluster, namespace: str) -> None:
        self.cluster = cluster
        self.namespace = namespace
        self.active: dict[str, bool] = {}
        self.peak = 0
        self.created: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> JobSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        rv = None
        while not self._stop.is_set():
            w = watch.Watch()
            try:
                kwargs: dict[str, Any] = {"timeout_seconds": 5}
                if rv:
                    kwargs["resource_version"] = rv
                for event in w.stream(
                    self.cluster.batch.list_namespaced_job, self.namespace, **kwargs
                ):
                    job = event["object"]
                    rv = job.metadata.resource_version
                    name = job.metadata.name
                    if event["type"] == "DELETED":
                        self.active.pop(name, None)
                    else:
                        self.created.add(name)
                        conds = job.status.conditions or []
                        done = any(
                            c.type in ("Complete", "Failed") and c.status == "True" for c in conds
                        )
                        self.active[name] = not done
                    self.peak = max(self.peak, sum(self.active.values()))
                    if self._stop.is_set():
                        break
            except Exception:
                rv = None  # expired: list again from now (the next event re-counts)
            finally:
                w.stop()


def test_sixty_sessions_with_a_cap_of_fifty(cluster, operator, namespace):
    _policy(cluster, namespace, {"maxConcurrentSessions": 50})
    names = [f"q{i:02d}" for i in range(60)]
    with JobSampler(cluster, namespace) as sampler:
        with ThreadPoolExecutor(16) as pool:
            list(
                pool.map(
                    lambda n: _create(
                        cluster,
                        namespace,
                        _session(n, annotations={"sim.ambient.ai/duration": "15s"}),
                    ),
                    names,
                )
            )

        def queued_seen():
            return [
                s
                for s in _sessions(cluster, namespace)
                if s.get("status", {}).get("reason") == "Queued"
            ]

        queued = cluster.wait_for("some Sessions Queued", queued_seen, timeout=60)

        def all_done():
            items = _sessions(cluster, namespace)
            phases = [i.get("status", {}).get("phase") for i in items]
            return items if phases.count("Completed") == 60 else None

        items = cluster.wait_for("all 60 Completed", all_done, timeout=240)
    assert sampler.peak <= 50, sampler.peak
    assert sampler.peak >= 40  # the cap was reached, not merely respected
    assert len(sampler.created) == 60
    assert len(cluster.jobs(namespace)) == 60
    condition = next(c for c in queued[0]["status"]["conditions"] if c["type"] == "Queued")
    assert condition["status"] == "True" and "position" in condition["message"]
    assert {i["status"]["attempt"] for i in items} == {1}
    waited = [i for i in items if "Queued" in _events(i["status"])]
    assert len(waited) >= 10
    for item in waited:
        cond = next(c for c in item["status"]["conditions"] if c["type"] == "Queued")
        assert (cond["status"], cond["reason"]) == ("False", "Admitted")


def test_cap_holds_across_operator_kills(cluster, operator, namespace):
    _policy(cluster, namespace, {"maxConcurrentSessions": 5})
    names = [f"k{i:02d}" for i in range(20)]
    with JobSampler(cluster, namespace) as sampler:
        for n in names:
            _create(cluster, namespace, _session(n, annotations={"sim.ambient.ai/duration": "2s"}))
        try:
            for delay in (3.0, 4.0, 2.5):
                time.sleep(delay)
                operator.kill()
                time.sleep(1.0)
                operator.start()
        finally:
            if operator.proc is None:
                operator.start()

        def all_done():
            items = _sessions(cluster, namespace)
            phases = [i.get("status", {}).get("phase") for i in items]
            return items if phases.count("Completed") == 20 else None

        cluster.wait_for("all 20 Completed", all_done, timeout=240)
    assert sampler.peak <= 5, sampler.peak
    per_session: dict[str, int] = {}
    for job in cluster.jobs(namespace):
        key = job.metadata.labels["ambient.ai/session"]
        per_session[key] = per_session.get(key, 0) + 1
    assert per_session == dict.fromkeys(names, 1)


def test_cancel_a_running_session(cluster, operator, namespace):
    _create(cluster, namespace, _session("long", annotations={"sim.ambient.ai/duration": "300s"}))
    cluster.wait_phase(namespace, "long", "Running")
    _cancel(cluster, namespace, "long", "alice")
    status = cluster.wait_phase(namespace, "long", "Failed")["status"]
    assert status["reason"] == "Cancelled"
    entry = next(e for e in status["history"] if e["event"] == "Cancelled")
    assert entry["data"]["cancelledBy"] == "alice"
    assert entry["data"]["jobName"] == "long-a1"
    undo = cluster.kubectl(
        "patch",
        "session",
        "long",
        "-n",
        namespace,
        "--type",
        "merge",
        "-p",
        '{"spec":{"cancel":false}}',
        check=False,
    )
    assert undo.returncode != 0 and "cannot be undone" in undo.stderr
    cluster.wait_for("the Job removed", lambda: cluster.jobs(namespace) == [])
    cluster.wait_for(
        "its pods removed",
        lambda: (
            cluster.core.list_namespaced_pod(namespace, label_selector="job-name=long-a1").items
            == []
        ),
    )


def test_cancel_a_queued_and_an_awaiting_approval_session(cluster, operator, namespace):
    _policy(cluster, namespace, {"maxConcurrentSessions": 1})
    _create(cluster, namespace, _session("first", annotations={"sim.ambient.ai/duration": "300s"}))
    cluster.wait_for("first's Job", lambda: cluster.jobs(namespace))
    _create(cluster, namespace, _session("second"))
    _create(cluster, namespace, _session("gated", approval=True))
    queued = _wait_reason(cluster, namespace, "second", "Queued")
    assert queued["phase"] == "Pending"
    _wait_reason(cluster, namespace, "gated", "AwaitingApproval")
    _cancel(cluster, namespace, "second", "bob")
    _cancel(cluster, namespace, "gated", "carol")
    for name, who in (("second", "bob"), ("gated", "carol")):
        status = cluster.wait_phase(namespace, name, "Failed")["status"]
        assert status["reason"] == "Cancelled"
        assert (
            next(e for e in status["history"] if e["event"] == "Cancelled")["data"]["cancelledBy"]
            == who
        )
    assert [j.metadata.name for j in cluster.jobs(namespace)] == ["first-a1"]
    _cancel(cluster, namespace, "first", "bob")
    cluster.wait_phase(namespace, "first", "Failed")


def test_timeout_bounded_by_policy(cluster, operator, namespace):
    _policy(cluster, namespace, {"lifecycle": {"maxTimeoutSeconds": 3}})
    body = _session("slow", annotations={"sim.ambient.ai/duration": "300s"})
    body["spec"]["timeoutSeconds"] = 600
    _create(cluster, namespace, body)
    # Read the Job while it exists: a timed-out Session's Job is deleted.
    job = cluster.wait_for(
        "the runner Job", lambda: cluster.batch.read_namespaced_job("slow-a1", namespace)
    )
    assert job.spec.active_deadline_seconds == 3
    status = cluster.wait_phase(namespace, "slow", "Failed", timeout=60)["status"]
    assert status["reason"] == "TimedOut"


def test_approval_expires(cluster, operator, namespace):
    _policy(cluster, namespace, {"lifecycle": {"approvalTimeoutSeconds": 2}})
    _create(cluster, namespace, _session("unapproved", approval=True))
    status = cluster.wait_phase(namespace, "unapproved", "Failed", timeout=60)["status"]
    assert status["reason"] == "ApprovalExpired"
    assert _events(status)[-2:] == ["AwaitingApproval", "ApprovalExpired"]
    assert cluster.jobs(namespace) == []


def test_oom_killed_attempts_are_retried_up_to_the_limit(cluster, operator, namespace):
    _policy(cluster, namespace, {"lifecycle": {"retries": {"limit": 2}}})
    oom = {"sim.ambient.ai/exit-code": "137", "sim.ambient.ai/reason": "OOMKilled"}
    _create(cluster, namespace, _session("hungry", annotations=oom))
    status = cluster.wait_phase(namespace, "hungry", "Failed", timeout=120)["status"]
    assert status["reason"] == "OOMKilled"
    assert status["attempt"] == 3
    retries = [e for e in status["history"] if e["event"] == "AttemptFailed"]
    assert [e["data"]["jobName"] for e in retries] == ["hungry-a1", "hungry-a2"]
    assert all(e["data"]["reason"] == "OOMKilled" for e in retries)
    assert retries[0]["data"]["correlationId"].endswith("/a1")
    jobs = sorted(j.metadata.name for j in cluster.jobs(namespace))
    assert jobs == ["hungry-a1", "hungry-a2", "hungry-a3"]
    labels = {
        j.metadata.name: j.metadata.labels["ambient.ai/attempt"] for j in cluster.jobs(namespace)
    }
    assert labels == {"hungry-a1": "1", "hungry-a2": "2", "hungry-a3": "3"}


def test_runner_exit_is_not_retried(cluster, operator, namespace):
    _policy(cluster, namespace, {"lifecycle": {"retries": {"limit": 2}}})
    _create(cluster, namespace, _session("broken", annotations={"sim.ambient.ai/exit-code": "2"}))
    status = cluster.wait_phase(namespace, "broken", "Failed")["status"]
    assert status["reason"] == "Error"
    assert "AttemptFailed" not in _events(status)
    assert [j.metadata.name for j in cluster.jobs(namespace)] == ["broken-a1"]


def test_policy_change_flags_then_stops(cluster, operator, namespace):
    spec = {
        "models": {"allowed": ["claude-3-sonnet"]},
        "lifecycle": {"onViolation": "flag"},
    }
    _policy(cluster, namespace, spec)
    running = _session(
        "agent", annotations={"sim.ambient.ai/duration": "300s"}, models=["claude-3-sonnet"]
    )
    _create(cluster, namespace, running)
    cluster.wait_phase(namespace, "agent", "Running")

    spec["models"] = {"allowed": ["claude-3-haiku"]}
    _policy(cluster, namespace, spec)

    def flagged():
        status = _status(cluster, namespace, "agent")
        conds = {c["type"]: c for c in status.get("conditions", [])}
        cond = conds.get("PolicyCompliant")
        return status if cond and cond["status"] == "False" else None

    status = cluster.wait_for("PolicyCompliant=False", flagged)
    assert status["phase"] == "Running"
    assert "PolicyViolationFlagged" in _events(status)
    assert cluster.jobs(namespace)

    spec["lifecycle"] = {"onViolation": "stop"}
    _policy(cluster, namespace, spec)
    status = cluster.wait_phase(namespace, "agent", "Failed")["status"]
    assert status["reason"] == "PolicyViolation"
    entry = next(e for e in status["history"] if e["event"] == "PolicyViolation")
    assert entry["data"]["codes"] == "ModelNotAllowed"
    cluster.wait_for("the Job removed", lambda: cluster.jobs(namespace) == [])
