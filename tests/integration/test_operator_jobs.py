"""Sessions become runner Jobs and finish, on the real API server with kwok nodes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def _events(cluster, namespace: str, name: str, uid: str = "") -> list[str]:
    """The reasons of a Session's Events; with ``uid``, only this Session's, not those of
    an earlier one of the same name (Events outlive it by an hour)."""
    selector = f"involvedObject.name={name},involvedObject.kind=Session"
    if uid:
        selector += f",involvedObject.uid={uid}"
    events = cluster.core.list_namespaced_event(namespace, field_selector=selector)
    return [e.reason for e in events.items]


def _history(body) -> list[str]:
    return [e["event"] for e in body["status"]["history"]]


def test_example_session_runs_to_completed(cluster, operator):
    ns, name = "team-alpha", "fix-flaky-test"
    # The control plane outlives test runs and `make run` applies the same example: start
    # from a new Session, not one finished (its Events expired) in an earlier run.
    cluster.kubectl("delete", "session", "-n", ns, name, "--ignore-not-found", "--wait=true")
    for example in ("namespace", "namespacepolicy", "session"):
        cluster.kubectl("apply", "-f", str(ROOT / "examples" / f"{example}.yaml"))
    body = cluster.wait_phase(ns, name, "Completed")

    status = body["status"]
    assert status["reason"] == "Succeeded"
    assert _history(body) == [
        "SessionCreated",
        "WorkloadCreated",
        "WorkloadStarted",
        "WorkloadSucceeded",
    ]
    assert [e["seq"] for e in status["history"]] == [0, 1, 2, 3]
    assert status["workload"]["jobName"] == "fix-flaky-test-a1"
    assert status["workload"]["podName"].startswith("fix-flaky-test-a1-")
    conditions = {c["type"]: c for c in status["conditions"]}
    for ctype in ("PolicyValidated", "WorkloadCreated", "Succeeded"):
        assert conditions[ctype]["status"] == "True", ctype
        assert conditions[ctype]["lastTransitionTime"]
        assert conditions[ctype]["observedGeneration"] == body["metadata"]["generation"]
    assert conditions["WorkloadRunning"]["status"] == "False"
    assert status["startTime"] <= status["completionTime"]

    job = cluster.batch.read_namespaced_job("fix-flaky-test-a1", ns)
    owner = job.metadata.owner_references[0]
    assert (owner.kind, owner.name, owner.uid) == ("Session", name, body["metadata"]["uid"])
    assert owner.controller is True
    assert job.metadata.labels["ambient.ai/session"] == name
    assert job.metadata.labels["ambient.ai/framework"] == "script"
    assert job.spec.backoff_limit == 0
    assert job.spec.active_deadline_seconds == 3600
    assert job.spec.ttl_seconds_after_finished == 86400
    pod_spec = job.spec.template.spec
    assert pod_spec.automount_service_account_token is False
    assert pod_spec.security_context.run_as_non_root is True
    assert pod_spec.security_context.seccomp_profile.type == "RuntimeDefault"
    sc = pod_spec.containers[0].security_context
    assert sc.allow_privilege_escalation is False
    assert sc.read_only_root_filesystem is True
    assert sc.capabilities.drop == ["ALL"]
    context = json.loads(job.spec.template.metadata.annotations["ambient.ai/context"])
    assert context["trigger"]["payload"]["request"].startswith("Find and fix")
    assert context["framework"]["config"]["command"][0] == "sh"
    assert context["policy"]["modelConstraints"]["allowed"] == ["claude-3-sonnet"]
    mount = {m.name: m.mount_path for m in pod_spec.containers[0].volume_mounts}
    assert mount["context"] == "/var/run/ambient"

    reasons = cluster.wait_for(
        "milestone events",
        lambda: (
            (r := _events(cluster, ns, name, body["metadata"]["uid"]))
            and "WorkloadSucceeded" in r
            and r
        ),
    )
    # The Job's creation is a condition and a history entry, not an Event (crds/events.py).
    assert "WorkloadSucceeded" in reasons and "WorkloadCreated" not in reasons


def test_failed_runner_surfaces_exit_code_and_message(cluster, operator, namespace, make_session):
    body = make_session(
        "fails",
        annotations={"sim.ambient.ai/exit-code": "3", "sim.ambient.ai/message": "tests failed: 2"},
    )
    cluster.apply(body, namespace)
    failed = cluster.wait_phase(namespace, "fails", "Failed")
    status = failed["status"]
    assert status["reason"] == "Error"
    assert status["message"] == "runner exited with code 3: tests failed: 2"
    last = status["history"][-1]
    assert last["event"] == "WorkloadFailed"
    assert last["data"]["exitCode"] == "3"
    assert last["data"]["message"] == "tests failed: 2"
    conditions = {c["type"]: c for c in status["conditions"]}
    assert conditions["Succeeded"]["status"] == "False"
    assert conditions["Succeeded"]["reason"] == "Error"
    assert "WorkloadFailed" in cluster.wait_for(
        "a Warning event", lambda: _events(cluster, namespace, "fails")
    )


def test_a_pod_that_turns_stuck_after_it_was_read_is_reported(
    cluster, operator, namespace, make_session
):
    """The pod is first read while it only waits to be scheduled; its image pull fails
    3 s later (kwok stage pod-waiting) without the Job's counters moving. The operator
    reads a pending pod again (settings.pod_recheck_seconds), so the Session says why it
    does not run instead of staying Pending until its timeout."""
    body = make_session("typo", annotations={"sim.ambient.ai/waiting": "ErrImagePull"})
    cluster.apply(body, namespace)

    def stuck():
        status = cluster.session(namespace, "typo").get("status", {})
        return status if status.get("reason") == "ErrImagePull" else None

    status = cluster.wait_for("the Session to say its pod cannot pull its image", stuck, 90)
    assert status["phase"] == "Pending"
    assert "simulated: ErrImagePull" in status["message"]
    conditions = {c["type"]: c for c in status["conditions"]}
    assert conditions["WorkloadRunning"]["reason"] == "ErrImagePull"


def test_deleting_a_session_deletes_its_job(cluster, operator, namespace, make_session):
    cluster.apply(make_session("doomed"), namespace)
    cluster.wait_for("the Job", lambda: cluster.jobs(namespace))
    cluster.kubectl("delete", "session", "doomed", "-n", namespace, "--wait=true")
    cluster.wait_for("garbage collection of the Job", lambda: cluster.jobs(namespace) == [])


def test_unknown_framework_fails_once_without_a_job(cluster, operator, namespace, make_session):
    cluster.apply(make_session("mystery", framework="quantum-agent"), namespace)
    body = cluster.wait_phase(namespace, "mystery", "Failed")
    assert body["status"]["reason"] == "UnknownFramework"
    assert "quantum-agent" in body["status"]["message"]
    assert "claude-code" in body["status"]["message"]
    assert _history(body) == ["SessionCreated", "FrameworkUnknown"]
    assert cluster.jobs(namespace) == []
    rv = body["metadata"]["resourceVersion"]
    # Terminal: nothing more is written, no retry loop.
    cluster.kubectl("annotate", "session", "mystery", "-n", namespace, "poke=1")
    again = cluster.session(namespace, "mystery")
    assert again["status"] == body["status"]
    assert again["metadata"]["resourceVersion"] != rv  # the annotation itself did land


def test_approval_required_waits_then_runs(cluster, operator, namespace, make_session):
    cluster.apply(make_session("gated", approval=True), namespace)
    body = cluster.wait_for(
        "AwaitingApproval",
        lambda: (
            (b := cluster.session(namespace, "gated")).get("status", {}).get("reason")
            == "AwaitingApproval"
            and b
        ),
    )
    assert body["status"]["phase"] == "Pending"
    assert cluster.jobs(namespace) == []
    cluster.kubectl("annotate", "session", "gated", "-n", namespace, "ambient.ai/approved-by=alice")
    done = cluster.wait_phase(namespace, "gated", "Completed")
    history = done["status"]["history"]
    approved = [e for e in history if e["event"] == "Approved"]
    assert approved and approved[0]["data"]["approvedBy"] == "alice"
    assert _history(done).index("AwaitingApproval") < _history(done).index("Approved")
    assert len(cluster.jobs(namespace)) == 1


def test_large_context_goes_through_a_configmap(cluster, operator, namespace, make_session):
    payload = {"blob": "x" * 200_000}
    cluster.apply(make_session("big", payload=payload), namespace)
    cluster.wait_phase(namespace, "big", "Completed")
    cm = cluster.core.read_namespaced_config_map("big-a1-ctx", namespace)
    assert json.loads(cm.data["session.json"])["trigger"]["payload"]["blob"] == "x" * 200_000
    assert cm.metadata.owner_references[0].name == "big"
    job = cluster.batch.read_namespaced_job("big-a1", namespace)
    volumes = {v.name: v for v in job.spec.template.spec.volumes}
    assert volumes["context"].config_map.name == "big-a1-ctx"
