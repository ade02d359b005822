"""Summaries of runner Jobs and Pods."""

from __future__ import annotations

from typing import Any

from ambient.operator.sessions.observe import (
    JobView,
    PodView,
    job_view,
    newest_pod,
    pod_outdated,
    pod_view,
    pod_waits,
)

UID = "5b1c2f4e-0000-4000-8000-000000000001"


def _job(
    status: dict[str, Any] | None = None, owners: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": "review-pr-42-a1",
            "namespace": "team-alpha",
            "labels": {"ambient.ai/session": "review-pr-42"},
            "ownerReferences": owners
            if owners is not None
            else [
                {
                    "apiVersion": "ambient.ai/v1alpha1",
                    "kind": "Session",
                    "name": "review-pr-42",
                    "uid": UID,
                    "controller": True,
                }
            ],
        },
        "spec": {"backoffLimit": 0},
        "status": status,
    }


def _pod(
    name: str = "review-pr-42-a1-x7k2p",
    phase: str = "Running",
    created: str = "2026-03-01T12:00:00Z",
    state: dict[str, Any] | None = None,
    job: str = "review-pr-42-a1",
) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "creationTimestamp": created,
            "labels": {
                "job-name": job,
                "batch.kubernetes.io/job-name": job,
                "ambient.ai/session": "review-pr-42",
            },
        },
        "status": {
            "phase": phase,
            "containerStatuses": [
                {"name": "runner", "ready": False, "restartCount": 0, "state": state or {}}
            ],
        },
    }


def test_new_job_without_status() -> None:
    view = job_view(_job(None))
    assert view.name == "review-pr-42-a1"
    assert view.owner_uid == UID
    assert (view.active, view.complete, view.failed) == (0, False, False)


def test_active_job() -> None:
    view = job_view(_job({"active": 1, "ready": 1, "startTime": "2026-03-01T12:00:01Z"}))
    assert (view.active, view.ready, view.complete, view.failed) == (1, 1, False, False)


def test_complete_job() -> None:
    status = {
        "succeeded": 1,
        "conditions": [
            {"type": "SuccessCriteriaMet", "status": "True", "reason": "CompletionsReached"},
            {"type": "Complete", "status": "True", "reason": "CompletionsReached"},
        ],
    }
    view = job_view(_job(status))
    assert view.complete and not view.failed
    assert view.failure_reason == ""


def test_failed_job() -> None:
    status = {
        "failed": 1,
        "conditions": [
            {"type": "FailureTarget", "status": "True", "reason": "BackoffLimitExceeded"},
            {
                "type": "Failed",
                "status": "True",
                "reason": "BackoffLimitExceeded",
                "message": "Job has reached the specified backoff limit",
            },
        ],
    }
    view = job_view(_job(status))
    assert view.failed and not view.complete
    assert view.failure_reason == "BackoffLimitExceeded"
    assert view.failure_message == "Job has reached the specified backoff limit"


def test_condition_that_is_not_true_does_not_count() -> None:
    status = {"conditions": [{"type": "Failed", "status": "False", "reason": "X"}]}
    view = job_view(_job(status))
    assert not view.failed
    assert view.failure_reason == ""


def test_deadline_exceeded_job() -> None:
    status = {
        "conditions": [
            {
                "type": "Failed",
                "status": "True",
                "reason": "DeadlineExceeded",
                "message": "Job was active longer than specified deadline",
            }
        ]
    }
    assert job_view(_job(status)).failure_reason == "DeadlineExceeded"


def test_owner_is_the_session_reference_only() -> None:
    owners = [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "x", "uid": "rs-uid"}]
    assert job_view(_job({}, owners)).owner_uid is None
    assert job_view(_job({}, [])).owner_uid is None
    owners.append({"apiVersion": "ambient.ai/v1alpha1", "kind": "Session", "uid": "s-uid"})
    assert job_view(_job({}, owners)).owner_uid == "s-uid"


def test_running_pod() -> None:
    view = pod_view(_pod(state={"running": {"startedAt": "2026-03-01T12:00:02Z"}}))
    assert view.name == "review-pr-42-a1-x7k2p"
    assert view.job_name == "review-pr-42-a1"
    assert view.phase == "Running"
    assert view.created == "2026-03-01T12:00:00Z"
    assert view.termination is None
    assert view.waiting_reason == ""


def test_terminated_pod() -> None:
    state = {
        "terminated": {
            "exitCode": 3,
            "reason": "Error",
            "message": "boom\n",
            "startedAt": "2026-03-01T12:00:02Z",
            "finishedAt": "2026-03-01T12:00:09Z",
        }
    }
    view = pod_view(_pod(phase="Failed", state=state))
    assert view.phase == "Failed"
    assert view.termination is not None
    assert view.termination.exit_code == 3
    assert view.termination.reason == "Error"
    assert view.termination.message == "boom"


def test_oom_killed_pod() -> None:
    view = pod_view(
        _pod(phase="Failed", state={"terminated": {"exitCode": 137, "reason": "OOMKilled"}})
    )
    assert view.termination is not None
    assert (view.termination.exit_code, view.termination.reason) == (137, "OOMKilled")
    assert view.termination.message == ""


def test_waiting_pod() -> None:
    state = {
        "waiting": {
            "reason": "ImagePullBackOff",
            "message": 'Back-off pulling image "ambient/runner-script:0.1.0"',
        }
    }
    view = pod_view(_pod(phase="Pending", state=state))
    assert view.phase == "Pending"
    assert view.waiting_reason == "ImagePullBackOff"
    assert "Back-off pulling image" in view.waiting_message
    assert view.termination is None


def test_pod_without_status_is_pending() -> None:
    view = pod_view({"metadata": {"name": "p", "labels": {"job-name": "j"}}})
    assert (view.name, view.job_name, view.phase, view.created) == ("p", "j", "Pending", "")


def test_newest_pod_by_creation_time() -> None:
    pods = [
        PodView(name="j-b", job_name="j", phase="Failed", created="2026-03-01T12:00:00Z"),
        PodView(name="j-a", job_name="j", phase="Running", created="2026-03-01T12:05:00Z"),
        PodView(name="j-c", job_name="j", phase="Failed", created="2026-03-01T12:01:00Z"),
        PodView(name="other-z", job_name="other", phase="Running", created="2026-03-01T13:00:00Z"),
    ]
    newest = newest_pod(pods, "j")
    assert newest is not None and newest.name == "j-a"
    other = newest_pod(pods, "other")
    assert other is not None and other.name == "other-z"
    assert newest_pod(pods, "missing") is None
    assert newest_pod([], "j") is None


def test_newest_pod_from_pod_bodies() -> None:
    pods = [
        pod_view(_pod(name="j-1", created="2026-03-01T12:00:00Z", phase="Failed")),
        pod_view(_pod(name="j-2", created="2026-03-01T12:00:30Z", phase="Running")),
    ]
    newest = newest_pod(list(reversed(pods)), "review-pr-42-a1")
    assert newest is not None and newest.name == "j-2"


def test_pod_view_reads_the_runner_container() -> None:
    body = _pod(phase="Failed", state={"terminated": {"exitCode": 3, "message": "boom"}})
    sidecar = {"name": "log-shipper", "state": {"terminated": {"exitCode": 0}}}
    body["status"]["containerStatuses"].insert(0, sidecar)
    view = pod_view(body)
    assert view.termination is not None
    assert (view.termination.exit_code, view.termination.message) == (3, "boom")


def test_failed_pod_count() -> None:
    assert job_view(_job({"failed": 2, "active": 1})).pods_failed == 2
    assert job_view(_job(None)).pods_failed == 0


def _seen(phase: str) -> PodView:
    return PodView(name="review-pr-42-a1-x7k2p", job_name="review-pr-42-a1", phase=phase)


def test_a_succeeded_job_needs_only_the_pod_it_saw_running() -> None:
    done = JobView(name="review-pr-42-a1", owner_uid=UID, complete=True)
    assert not pod_outdated(done, _seen("Running"))
    assert not pod_outdated(done, _seen("Pending"))
    assert pod_outdated(done, None)


def test_a_succeeded_job_after_a_failed_pod_reads_the_pod_again() -> None:
    # With a backoffLimit above 0, the pod seen running may be the one that failed.
    done = JobView(name="review-pr-42-a1", owner_uid=UID, complete=True, pods_failed=1)
    assert pod_outdated(done, _seen("Running"))
    assert pod_outdated(done, _seen("Failed"))
    assert not pod_outdated(done, _seen("Succeeded"))


def test_a_failed_job_reads_the_pod_until_it_has_its_exit() -> None:
    failed = JobView(name="review-pr-42-a1", owner_uid=UID, failed=True, pods_failed=1)
    assert pod_outdated(failed, _seen("Running"))
    assert pod_outdated(failed, None)
    assert not pod_outdated(failed, _seen("Failed"))


def test_a_running_job_reads_a_pod_still_seen_pending() -> None:
    ready = JobView(name="review-pr-42-a1", owner_uid=UID, active=1, ready=1)
    assert pod_outdated(ready, _seen("Pending"))
    assert not pod_outdated(ready, _seen("Running"))


def test_a_starting_job_reads_its_pod_only_when_a_recheck_is_due() -> None:
    """At the Job's first count its pod is Pending with nothing to say: no read then.
    Once the recheck is due, a pod never read or last seen Pending is read."""
    starting = JobView(name="review-pr-42-a1", owner_uid=UID, active=1)
    assert not pod_outdated(starting, None)
    assert not pod_outdated(starting, _seen("Pending"))
    assert pod_outdated(starting, None, due=True)
    assert pod_outdated(starting, _seen("Pending"), due=True)
    assert not pod_outdated(starting, _seen("Running"), due=True)
    for moved in ({"ready": 1}, {"complete": True}, {"failed": True}, {"active": 0}):
        job = starting.model_copy(update=moved)
        assert not pod_waits(job, None), moved
    assert pod_waits(starting, None) and pod_waits(starting, _seen("Pending"))
