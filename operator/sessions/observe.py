"""Pure summaries of the Jobs and Pods a Session owns, as the planner needs them.

The operator keeps these (not whole objects) in its watch-fed indexes, so memory stays
small with thousands of Sessions.
"""

from __future__ import annotations

import json
import re
from typing import Any

from pydantic import BaseModel

RUNNER_CONTAINER = "runner"
"""The name of the container that runs the framework (builders.runner_job uses it)."""


class JobView(BaseModel):
    """What matters about a runner Job."""

    name: str
    owner_uid: str | None
    active: int = 0
    ready: int = 0
    complete: bool = False
    failed: bool = False
    pods_failed: int = 0
    """How many of its pods failed (more than none only with a backoffLimit above 0)."""
    failure_reason: str = ""
    failure_message: str = ""


class Termination(BaseModel):
    """How the runner container ended."""

    exit_code: int
    reason: str = ""
    message: str = ""


class PodView(BaseModel):
    """What matters about a runner Pod."""

    name: str
    job_name: str
    phase: str
    created: str = ""
    reason: str = ""
    """The pod's own status.reason, e.g. Evicted, NodeLost, Shutdown."""
    waiting_reason: str = ""
    waiting_message: str = ""
    termination: Termination | None = None


def _true(conditions: list[dict[str, Any]], ctype: str) -> dict[str, Any] | None:
    return next(
        (c for c in conditions if c.get("type") == ctype and c.get("status") == "True"), None
    )


def job_view(body: dict[str, Any]) -> JobView:
    """Summarise a Job body."""
    meta = body.get("metadata", {})
    status = body.get("status") or {}
    conditions = status.get("conditions") or []
    owner = next(
        (o.get("uid") for o in meta.get("ownerReferences") or [] if o.get("kind") == "Session"),
        None,
    )
    failed = _true(conditions, "Failed")
    return JobView(
        name=meta.get("name", ""),
        owner_uid=owner,
        active=status.get("active") or 0,
        ready=status.get("ready") or 0,
        complete=_true(conditions, "Complete") is not None,
        failed=failed is not None,
        pods_failed=status.get("failed") or 0,
        failure_reason=(failed or {}).get("reason", ""),
        failure_message=(failed or {}).get("message", ""),
    )


def pod_view(body: dict[str, Any]) -> PodView:
    """Summarise a Pod body: phase, and the runner container's waiting or final state."""
    meta = body.get("metadata", {})
    status = body.get("status") or {}
    view = PodView(
        name=meta.get("name", ""),
        job_name=(meta.get("labels") or {}).get("job-name", ""),
        phase=status.get("phase") or "Pending",
        created=meta.get("creationTimestamp") or "",
        reason=status.get("reason") or "",
    )
    statuses = status.get("containerStatuses") or []
    # The runner container decides; a sidecar's state must not hide the runner's exit.
    for cs in [c for c in statuses if c.get("name") == RUNNER_CONTAINER] or statuses:
        state = cs.get("state") or {}
        if "terminated" in state:
            term = state["terminated"]
            view.termination = Termination(
                exit_code=int(term.get("exitCode", 0)),
                reason=term.get("reason") or "",
                message=(term.get("message") or "").strip(),
            )
            break
        if "waiting" in state:
            view.waiting_reason = state["waiting"].get("reason") or ""
            view.waiting_message = state["waiting"].get("message") or ""
    return view


RUNNER_REASON = re.compile(r"^[A-Z][A-Za-z]{0,63}$")


def runner_verdict(message: str) -> tuple[str, str] | None:
    """The reason and message of a runner's JSON termination message, if it wrote one.

    The runner contract: {"reason": "BudgetExceeded", "message": "..."} in
    /dev/termination-log. Anything else (plain text, a log tail) is not a verdict.
    """
    try:
        body = json.loads(message)
    except ValueError:
        return None
    if not isinstance(body, dict):
        return None
    reason = body.get("reason")
    if not isinstance(reason, str) or not RUNNER_REASON.fullmatch(reason):
        return None
    return reason, str(body.get("message") or "")


def pod_waits(job: JobView, pod: PodView | None) -> bool:
    """Whether the Job has a pod that has not started, as far as anyone knows: the Job's
    counters say it is active but not ready, and the pod, if read, was Pending."""
    if job.complete or job.failed or job.ready > 0 or job.active == 0:
        return False
    return pod is None or pod.phase == "Pending"


def pod_outdated(job: JobView, pod: PodView | None, due: bool = False) -> bool:
    """Whether the Job's state says more about its pod than the pod last read does, so
    reading the pod again is worth a request.

    A Job that succeeded needs only its pod's name: the pod last read (even while it ran)
    is the one that succeeded unless an earlier pod failed (a backoffLimit above 0). A pod
    that waits to start is read only when ``due`` (the controller's recheck timer): at the
    Job's first count a pod is Pending with nothing to say, and the planner writes the
    same status for it as for no pod; only later can it say that it is stuck."""
    if job.complete:
        return pod is None or (job.pods_failed > 0 and pod.phase != "Succeeded")
    if job.failed:
        return pod is None or pod.phase not in ("Succeeded", "Failed")
    if job.ready > 0:
        return pod is None or pod.phase == "Pending"
    return due and pod_waits(job, pod)


def newest_pod(pods: list[PodView], job: str) -> PodView | None:
    """The Job's most recent pod (a Job with backoff may have several)."""
    mine = [p for p in pods if p.job_name == job]
    return max(mine, key=lambda p: (p.created, p.name)) if mine else None
