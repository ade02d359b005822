"""The controller against a fake API client and a fake clock: what each event queues,
what a reconcile creates and writes, what is forgotten, and what is measured."""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import Callable
from datetime import datetime
from typing import Any, cast

import jsonpatch
import pytest

from ambient.common.kube.client import Kube
from ambient.crds import naming, patches
from ambient.operator import metrics
from ambient.operator.controller import Controller, index_key, slim
from ambient.operator.sessions import network
from ambient.operator.sessions.observe import job_view
from ambient.operator.settings import OperatorSettings
from ambient.operator.state import SessionState
from ambient.operator.supervisor import Supervisor
from ambient.operator.workqueue import PROGRESS, START
from ambient.runners.registry import Registry

NS, NAME = "team-alpha", "review-pr-42"
KEY = (NS, NAME)
UID = "5b1c2f4e-0000-4000-8000-000000000001"  # make_body's default


class FakeApi:
    """The calls the controller makes, answered from memory and recorded."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.sessions: dict[tuple[str, str], dict[str, Any]] = {}
        self.pods: list[dict[str, Any]] = []
        self.policies: list[dict[str, Any]] = []
        self.fail_create: Exception | None = None

    def create(self, manifest: dict[str, Any]) -> tuple[bool, dict[str, Any]]:
        self.calls.append(("create", (manifest["kind"], manifest["metadata"]["name"])))
        if self.fail_create is not None:
            raise self.fail_create
        return True, manifest

    def get_session(self, namespace: str, name: str) -> dict[str, Any]:
        self.calls.append(("get_session", name))
        return copy.deepcopy(self.sessions[(namespace, name)])

    def patch_session_status(
        self,
        namespace: str,
        name: str,
        rv: str,
        old: dict[str, Any] | None,
        status: dict[str, Any],
    ) -> dict[str, Any]:
        self.calls.append(("patch_session_status", status))
        body = copy.deepcopy(self.sessions[(namespace, name)])
        assert body["metadata"]["resourceVersion"] == rv
        # The patch is made against what is stored, and applied as the API server would.
        body = jsonpatch.apply_patch(body, patches.status_patch(rv, old, status))
        assert body["status"] == status
        body["metadata"]["resourceVersion"] = str(int(rv) + 1)
        self.sessions[(namespace, name)] = body
        return copy.deepcopy(body)

    def get_job(self, namespace: str, name: str) -> dict[str, Any] | None:
        self.calls.append(("get_job", name))
        return None

    def list_pods(self, namespace: str, job: str, consistent: bool) -> list[dict[str, Any]]:
        self.calls.append(("list_pods", job))
        return [p for p in self.pods if p["metadata"]["labels"]["job-name"] == job]

    def delete_job(self, namespace: str, name: str) -> bool:
        self.calls.append(("delete_job", name))
        return True

    def list_policies(self, namespace: str | None = None) -> list[dict[str, Any]]:
        return self.policies

    def list_sessions_cached(self, namespace: str) -> list[dict[str, Any]]:
        return list(self.sessions.values())

    def patch_policy_status(self, namespace: str, name: str, patch: dict[str, Any]) -> None:
        self.calls.append(("patch_policy_status", patch))

    def apply_session_condition(
        self, namespace: str, name: str, condition: dict[str, Any]
    ) -> dict[str, Any]:
        self.calls.append(("apply_session_condition", condition))
        return {}

    def names(self, call: str) -> list[Any]:
        return [arg for name, arg in self.calls if name == call]


class FakeClock:
    """Time stands still until a test moves it; timers wait until a test fires them."""

    def __init__(self, now: datetime) -> None:
        self.wall = now
        self.mono = 1000.0
        self.timers: list[tuple[float, Callable[[], None]]] = []
        self.sleeps: list[float] = []

    def now(self) -> datetime:
        return self.wall

    def monotonic(self) -> float:
        return self.mono

    def call_later(self, delay: float, callback: Callable[[], None]) -> None:
        self.timers.append((delay, callback))

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        await asyncio.sleep(3600)

    def fire(self) -> None:
        timers, self.timers = self.timers, []
        for _, callback in timers:
            callback()


class Harness:
    """A controller with fakes, and the indexes kopf would hand it."""

    def __init__(
        self,
        settings: OperatorSettings,
        registry: Registry,
        now: datetime,
        new_index: Callable[[], Any],
    ) -> None:
        self.api = FakeApi()
        self.clock = FakeClock(now)
        self.events: list[tuple[str, str]] = []
        self.audit: list[dict[str, Any]] = []
        self.om = metrics.create(lambda: ())
        self.controller = Controller(
            api=cast(Kube, self.api),
            clock=self.clock,
            settings=settings,
            registry=registry,
            metrics=self.om,
            post_event=lambda ref, type_, reason, message: self.events.append((type_, reason)),
            emit_audit=self.audit.append,
        )
        self.sessions = new_index()
        self.jobs = new_index()
        self.indexes = {"session_index": self.sessions, "job_index": self.jobs}

    def put_session(self, body: dict[str, Any]) -> None:
        """The Session as stored and as the watch delivers it."""
        meta = body["metadata"]
        self.api.sessions[(meta["namespace"], meta["name"])] = copy.deepcopy(body)
        self.sessions.file(*index_key(meta["namespace"], meta["name"]), slim(body, 4096))

    def put_job(self, name: str, status: dict[str, Any]) -> None:
        owner = {"kind": "Session", "uid": UID}
        body = {"metadata": {"name": name, "ownerReferences": [owner]}, "status": status}
        self.jobs.file(*index_key(NS, NAME), job_view(body))

    async def event(self, kind: str = "MODIFIED") -> None:
        body = self.api.sessions[KEY]
        await self.controller.session_event(kind, body, NS, NAME, self.indexes)

    async def drain(self) -> list[tuple[tuple[str, str], int]]:
        """Reconcile whatever is queued, as the workers would, in order."""
        done = []
        while len(self.controller.queue):
            key, priority = await self.controller.queue.get()
            try:
                await self.controller.work_on(key, priority)
            finally:
                self.controller.queue.done(key)
            done.append((key, priority))
        return done

    async def failing(self, body: dict[str, Any]) -> SessionState:
        """The Session, reconciled once with its Job create refused (no backoff jitter)."""
        self.controller.draw = lambda: 0.5
        self.put_session(body)
        self.api.fail_create = RuntimeError("quota exceeded")
        await self.event("ADDED")
        await self.drain()
        state = self.controller.state.peek(KEY)
        assert state is not None
        return state

    def sample(self, name: str, **labels: str) -> float | None:
        return self.om.registry.get_sample_value(name, labels)


@pytest.fixture
def harness(
    settings: OperatorSettings,
    registry: Registry,
    now: datetime,
    new_index: Callable[[], Any],
) -> Callable[[], Harness]:
    return lambda: Harness(settings, registry, now, new_index)


def test_a_new_session_gets_its_identity_and_job_then_its_status(
    harness: Callable[[], Harness], make_body: Callable[..., dict[str, Any]]
) -> None:
    async def main() -> Harness:
        h = harness()
        h.put_session(make_body())
        await h.event("ADDED")
        assert len(h.controller.queue) == 1
        assert await h.drain() == [(KEY, START)]
        kinds = [kind for kind, _ in h.api.names("create")]
        # The namespace's runner NetworkPolicy, the identity (ServiceAccount and Role at
        # once, then the binding), the Job.
        assert kinds[0] == "NetworkPolicy"
        assert set(kinds[1:3]) == {"ServiceAccount", "Role"}
        assert kinds[3:] == ["RoleBinding", "Job"]
        # Starting only creates: the status waits for the pod to run (settle_seconds),
        # and at least for the progress interval.
        assert h.api.names("patch_session_status") == []
        assert [delay for delay, _ in h.clock.timers] == [h.controller.settings.settle_seconds, 1.0]
        state = h.controller.state.peek(KEY)
        assert state is not None and state.created is not None
        assert state.created.name == naming.job_name(NAME, 1)
        assert h.controller.state.namespace(NS).inflight
        settle, progress = h.clock.timers
        h.clock.timers = [settle]
        progress[1]()  # the progress interval passed, the pod does not run yet: no write
        assert await h.drain() == [(KEY, PROGRESS)]
        assert h.api.names("patch_session_status") == []
        h.clock.fire()  # the settle time passed: the creation is written on its own
        assert await h.drain() == [(KEY, PROGRESS)]
        (status,) = h.api.names("patch_session_status")
        assert status["workload"]["jobName"] == naming.job_name(NAME, 1)
        assert "WorkloadCreated" in {e["event"] for e in status["history"]}
        assert h.events == [], "the Job's creation is no Kubernetes Event (its condition is)"
        assert "WorkloadCreated" in {r["action"] for r in h.audit}
        return h

    asyncio.run(main())


async def _job_changed(
    h: Harness, job: str, status: dict[str, Any], pod_phase: str, **pod: Any
) -> None:
    """The Job's status and its pod as the watch and a pod list would show them."""
    h.put_job(job, status)
    pod_status: dict[str, Any] = {"phase": pod_phase, **pod}
    if pod_phase == "Succeeded":
        pod_status["containerStatuses"] = [
            {"name": "runner", "state": {"terminated": {"exitCode": 0}}}
        ]
    meta = {"name": f"{job}-x", "labels": {"job-name": job}}
    h.api.pods[:] = [{"metadata": meta, "status": pod_status}]
    await h.controller.job_event(
        "MODIFIED",
        {"metadata": {"name": job}, "status": status},
        NS,
        {naming.LABEL_SESSION: naming.session_label_value(NAME)},
        h.indexes,
    )
    await h.drain()


async def _recheck_due(h: Harness) -> None:
    """The pod recheck's timer fires now (the clock not moved): the pod is read."""
    (recheck,) = [
        t for t in h.clock.timers if getattr(t[1], "func", None) == h.controller._recheck_pod
    ]
    h.clock.timers.remove(recheck)
    recheck[1]()
    await h.drain()


async def _job_just_created(h: Harness, body: dict[str, Any]) -> str:
    """A new Session's Job created, its status left to the settle time; its Job's name."""
    h.put_session(body)
    await h.event("ADDED")
    await h.drain()
    h.clock.mono += 2  # past the progress interval, within the settle time
    return naming.job_name(NAME, 1)


RUNNING = {"active": 1, "ready": 1}
FINISHED = {"succeeded": 1, "conditions": [{"type": "Complete", "status": "True"}]}


def _events(status: dict[str, Any]) -> list[str]:
    return [e["event"] for e in status["history"]]


def test_the_jobs_creation_and_its_pods_start_go_in_one_status_write(
    harness: Callable[[], Harness], make_body: Callable[..., dict[str, Any]]
) -> None:
    async def main() -> None:
        h = harness()
        job = await _job_just_created(h, make_body())
        await _job_changed(h, job, {"active": 1}, "Pending")  # its pod does not run yet
        assert h.api.names("patch_session_status") == []
        await _job_changed(h, job, RUNNING, "Running")
        # Running is progress too: it waits out the settle time for an outcome.
        assert h.api.names("patch_session_status") == []
        h.clock.fire()
        await h.drain()
        (status,) = h.api.names("patch_session_status")
        assert (status["phase"], status["reason"]) == ("Running", "Running")
        assert _events(status) == ["SessionCreated", "WorkloadCreated", "WorkloadStarted"]
        # Nothing more to write, and no second wait for the same news.
        h.clock.fire()
        await h.drain()
        assert len(h.api.names("patch_session_status")) == 1

    asyncio.run(main())


def test_a_short_runs_outcome_goes_with_its_creation_in_one_status_write(
    harness: Callable[[], Harness], make_body: Callable[..., dict[str, Any]]
) -> None:
    async def main() -> None:
        h = harness()
        job = await _job_just_created(h, make_body())
        await _job_changed(h, job, RUNNING, "Running")
        assert h.api.names("patch_session_status") == []
        await _job_changed(h, job, FINISHED, "Succeeded")  # an outcome: written at once
        (status,) = h.api.names("patch_session_status")
        assert (status["phase"], status["reason"]) == ("Completed", "Succeeded")
        assert _events(status) == [
            "SessionCreated",
            "WorkloadCreated",
            "WorkloadStarted",
            "WorkloadSucceeded",
        ]

    asyncio.run(main())


@pytest.mark.parametrize(
    ("job_status", "pod_phase"),
    [
        (RUNNING, "Running"),
        # Seen only once it finished, before the Job controller counted it ready: its
        # start is news of its own that waits too.
        ({"active": 1, "ready": 1}, "Succeeded"),
    ],
)
def test_in_a_burst_a_late_pods_start_waits_to_go_with_the_outcome(
    harness: Callable[[], Harness],
    make_body: Callable[..., dict[str, Any]],
    job_status: dict[str, Any],
    pod_phase: str,
) -> None:
    """Pods start long after their Jobs when many Sessions arrive at once: the creation
    is written when the settle time ends, the start then waits for the outcome."""

    async def main() -> None:
        h = harness()
        job = await _job_just_created(h, make_body())
        h.clock.mono += 4
        h.clock.fire()  # the settle time passed and the pod does not run yet
        await h.drain()
        (created,) = h.api.names("patch_session_status")
        assert (created["phase"], created["reason"]) == ("Pending", "WorkloadCreated")
        h.put_session(h.api.sessions[KEY])  # the watch shows the write
        h.clock.mono += 20
        await _job_changed(h, job, job_status, pod_phase)
        assert len(h.api.names("patch_session_status")) == 1, "the start waits"
        assert [delay for delay, _ in h.clock.timers][-1] == h.controller.settings.settle_seconds
        h.clock.mono += 2
        await _job_changed(h, job, FINISHED, "Succeeded")
        writes = h.api.names("patch_session_status")
        assert len(writes) == 2
        assert (writes[1]["phase"], writes[1]["reason"]) == ("Completed", "Succeeded")
        assert _events(writes[1])[-2:] == ["WorkloadStarted", "WorkloadSucceeded"]

    asyncio.run(main())


def test_a_stuck_pod_is_written_at_once_within_the_settle_time(
    harness: Callable[[], Harness], make_body: Callable[..., dict[str, Any]]
) -> None:
    async def main() -> None:
        h = harness()
        job = await _job_just_created(h, make_body())
        waiting = {"waiting": {"reason": "ErrImagePull", "message": "no"}}
        await _job_changed(
            h,
            job,
            {"active": 1},
            "Pending",
            containerStatuses=[{"name": "runner", "state": waiting}],
        )
        assert h.api.names("list_pods") == [], "a pod that has just been counted is not read"
        await _recheck_due(h)
        (status,) = h.api.names("patch_session_status")
        assert (status["phase"], status["reason"]) == ("Pending", "ErrImagePull")

    asyncio.run(main())


def test_a_settle_timer_ends_only_its_own_window(
    harness: Callable[[], Harness], make_body: Callable[..., dict[str, Any]]
) -> None:
    """A window closed by a write that was not progress leaves its timer behind; when a
    later window opens before that timer fires, the old timer must not end it early."""

    async def main() -> None:
        h = harness()
        settle = h.controller.settings.settle_seconds
        job = await _job_just_created(h, make_body())
        (first,) = [callback for delay, callback in h.clock.timers if delay == settle]
        h.clock.timers.clear()
        waiting = {"waiting": {"reason": "ErrImagePull", "message": "no"}}
        await _job_changed(
            h,
            job,
            {"active": 1},
            "Pending",
            containerStatuses=[{"name": "runner", "state": waiting}],
        )
        await _recheck_due(h)
        assert len(h.api.names("patch_session_status")) == 1  # stuck: written at once
        h.put_session(h.api.sessions[KEY])
        h.clock.timers.clear()
        h.clock.mono += 2  # past the progress interval
        await _job_changed(h, job, RUNNING, "Running")  # news again: a new window
        (second,) = [callback for delay, callback in h.clock.timers if delay == settle]
        first()  # the first window's timer fires within the second window
        await h.drain()
        assert len(h.api.names("patch_session_status")) == 1, "the start still waits"
        h.clock.mono += settle
        second()
        await h.drain()
        writes = h.api.names("patch_session_status")
        assert len(writes) == 2
        assert (writes[1]["phase"], writes[1]["reason"]) == ("Running", "Running")

    asyncio.run(main())


def test_a_pending_pod_is_read_again_and_its_failed_image_pull_reported(
    harness: Callable[[], Harness], make_body: Callable[..., dict[str, Any]]
) -> None:
    """The image pull fails after the pod was read; the Job's counters do not move."""

    async def main() -> None:
        h = harness()
        job = await _job_just_created(h, make_body())
        await _job_changed(h, job, {"active": 1}, "Pending")  # only scheduled when read
        reads = len(h.api.names("list_pods"))
        assert h.controller.settings.pod_recheck_seconds in [d for d, _ in h.clock.timers]
        waiting = {"waiting": {"reason": "ErrImagePull", "message": "no such image"}}
        h.api.pods[0]["status"]["containerStatuses"] = [{"name": "runner", "state": waiting}]
        h.clock.mono += 40
        h.clock.fire()  # the settle time and the recheck
        await h.drain()
        assert len(h.api.names("list_pods")) > reads
        status = h.api.names("patch_session_status")[-1]
        assert (status["phase"], status["reason"]) == ("Pending", "ErrImagePull")

    asyncio.run(main())


def test_a_pod_that_stays_pending_is_read_less_and_less_often(
    harness: Callable[[], Harness], make_body: Callable[..., dict[str, Any]]
) -> None:
    """In a burst the scheduler keeps pods Pending for minutes: each read again doubles
    the wait, up to pod_recheck_max_seconds."""

    def rechecks(h: Harness) -> list[tuple[float, Callable[[], None]]]:
        return [
            t for t in h.clock.timers if getattr(t[1], "func", None) == h.controller._recheck_pod
        ]

    async def main() -> None:
        h = harness()
        job = await _job_just_created(h, make_body())
        await _job_changed(h, job, {"active": 1}, "Pending")
        delays = []
        for _ in range(6):
            ((delay, callback),) = rechecks(h)
            delays.append(delay)
            h.clock.timers.clear()
            h.clock.mono += delay
            reads = len(h.api.names("list_pods"))
            callback()
            await h.drain()
            assert len(h.api.names("list_pods")) == reads + 1
        assert delays == [30.0, 60.0, 120.0, 240.0, 300.0, 300.0]

    asyncio.run(main())


def test_a_finished_job_completes_the_session(
    harness: Callable[[], Harness], make_body: Callable[..., dict[str, Any]]
) -> None:
    async def main() -> None:
        h = harness()
        h.put_session(make_body())
        await h.event("ADDED")
        await h.drain()
        h.clock.fire()
        await h.drain()
        h.put_session(h.api.sessions[KEY])  # the watch shows our write
        job = naming.job_name(NAME, 1)
        h.clock.mono += 5  # past the progress interval since the last write
        finished = {"succeeded": 1, "conditions": [{"type": "Complete", "status": "True"}]}
        h.put_job(job, finished)
        h.api.pods.append(
            {
                "metadata": {"name": f"{job}-x", "labels": {"job-name": job}},
                "status": {
                    "phase": "Succeeded",
                    "containerStatuses": [
                        {"name": "runner", "state": {"terminated": {"exitCode": 0}}}
                    ],
                },
            }
        )
        await h.controller.job_event(
            "MODIFIED",
            {"metadata": {"name": job}, "status": finished},
            NS,
            {naming.LABEL_SESSION: naming.session_label_value(NAME)},
            h.indexes,
        )
        assert job not in h.controller.state.namespace(NS).active_jobs
        assert h.clock.timers == []  # no wait: the interval since the last write passed
        assert await h.drain() == [(KEY, PROGRESS)]
        status = h.api.names("patch_session_status")[-1]
        assert (status["phase"], status.get("reason")) == ("Completed", "Succeeded"), status
        assert h.api.names("list_pods") == [job]
        assert ("Normal", "WorkloadSucceeded") in h.events
        # Nothing changed since: the same observation is not planned again.
        before = len(h.api.calls)
        h.put_session(h.api.sessions[KEY])
        await h.event()
        await h.drain()
        assert len(h.api.calls) == before

    asyncio.run(main())


def test_delete_forgets_everything_including_the_pods_of_retried_attempts(
    harness: Callable[[], Harness], make_body: Callable[..., dict[str, Any]]
) -> None:
    """Before the StateStore, only attempt 1's pod entry was dropped on delete."""

    async def main() -> None:
        h = harness()
        job = naming.job_name(NAME, 2)
        h.put_session(
            make_body(
                status={
                    "phase": "Running",
                    "attempt": 2,
                    "workload": {"jobName": job},
                    "history": [],
                }
            )
        )
        h.put_job(job, {"active": 1, "ready": 1})
        h.api.pods.append(
            {
                "metadata": {"name": f"{job}-x", "labels": {"job-name": job}},
                "status": {"phase": "Running"},
            }
        )
        await h.event()
        await h.drain()
        state = h.controller.state.peek(KEY)
        assert state is not None and job in state.pods
        h.controller.state.get(KEY).failed = True
        h.controller.queue.add(KEY)
        await h.event("DELETED")
        assert h.controller.state.peek(KEY) is None
        assert len(h.controller.state) == 0
        assert len(h.controller.queue) == 0
        assert NAME not in h.controller.state.namespace(NS).names
        assert list(h.controller.state.session_samples()) == []

    asyncio.run(main())


def test_a_policy_change_queues_the_unfinished_sessions_and_reconciles_none_inline(
    harness: Callable[[], Harness], make_body: Callable[..., dict[str, Any]]
) -> None:
    async def main() -> None:
        h = harness()
        h.put_session(make_body(name="open"))
        h.put_session(make_body(name="done", status={"phase": "Completed", "history": []}))
        policy = {
            "apiVersion": "ambient.ai/v1alpha1",
            "kind": "NamespacePolicy",
            "metadata": {"name": "default", "namespace": NS, "generation": 2},
            "spec": {},
        }
        await h.controller.policy_event("ADDED", policy, NS, h.indexes)
        assert h.api.calls == []  # nothing reconciled in the handler
        assert len(h.controller.queue) == 1
        key, priority = await h.controller.queue.get()
        h.controller.queue.done(key)
        assert (key, priority) == ((NS, "open"), PROGRESS)
        state = h.controller.state.peek((NS, "open"))
        assert state is not None and state.forced
        assert len(h.clock.timers) == 1  # the namespace's queue is looked at soon
        # The same policy again (a status-only update) queues nothing.
        await h.controller.policy_event("MODIFIED", policy, NS, h.indexes)
        assert len(h.controller.queue) == 0

    asyncio.run(main())


def test_resync_queues_failed_and_overdue_sessions(
    harness: Callable[[], Harness], make_body: Callable[..., dict[str, Any]]
) -> None:
    async def main() -> None:
        h = harness()
        for name in ("failed", "overdue", "later", "fine"):
            h.put_session(make_body(name=name))
            body = h.api.sessions[(NS, name)]
            await h.controller.session_event("ADDED", body, NS, name, h.indexes)
        while len(h.controller.queue):  # what the events queued
            h.controller.queue.done((await h.controller.queue.get())[0])
        now = h.clock.now().timestamp()
        h.controller.state.get((NS, "failed")).failed = True
        h.controller.state.get((NS, "overdue")).deadline = now - 1
        h.controller.state.get((NS, "later")).deadline = now + 60
        h.controller.state.get((NS, "fine"))
        await h.controller.resync()
        queued = []
        while len(h.controller.queue):
            key, _ = await h.controller.queue.get()
            h.controller.queue.done(key)
            queued.append(key[1])
        assert sorted(queued) == ["failed", "overdue"]
        assert h.api.calls == []

    asyncio.run(main())


def test_resync_looks_at_the_queue_only_where_the_cap_refused_someone(
    harness: Callable[[], Harness], make_body: Callable[..., dict[str, Any]]
) -> None:
    async def main() -> None:
        h = harness()
        h.put_session(make_body())
        await h.event("ADDED")
        await h.drain()
        h.clock.timers.clear()
        await h.controller.resync()
        assert h.clock.timers == []  # nobody waits for a slot: no look at the queue
        h.controller.state.namespace(NS).refused.add("queued")
        await h.controller.resync()
        assert len(h.clock.timers) == 1
        h.controller.state.namespace("elsewhere")  # known, nobody refused there
        h.clock.fire()
        await h.controller.resync()
        assert len(h.clock.timers) == 1

    asyncio.run(main())


def test_a_reconcile_records_its_duration_and_a_failure_its_kind(
    harness: Callable[[], Harness], make_body: Callable[..., dict[str, Any]]
) -> None:
    async def main() -> None:
        h = harness()
        h.put_session(make_body())
        h.api.fail_create = RuntimeError("API down")
        await h.event("ADDED")
        await h.drain()
        assert h.sample("ambient_reconcile_duration_seconds_count") == 1
        assert h.sample("ambient_reconcile_errors_total", kind="RuntimeError") == 1
        state = h.controller.state.peek(KEY)
        assert state is not None and state.failed  # the resync loop tries again
        # The create failed, so it no longer holds a slot.
        assert h.controller.state.namespace(NS).inflight == {}
        h.api.fail_create = None
        h.clock.mono += 10  # past the first backoff (5 s, +-20%)
        await h.controller.resync()
        await h.drain()
        assert h.sample("ambient_reconcile_duration_seconds_count") == 2
        assert h.sample("ambient_reconcile_errors_total", kind="RuntimeError") == 1
        assert not state.failed

    asyncio.run(main())


def test_someone_elses_identity_object_blocks_the_job_with_a_warning(
    harness: Callable[[], Harness], make_body: Callable[..., dict[str, Any]]
) -> None:
    async def main() -> None:
        h = harness()
        h.put_session(make_body())

        def foreign(manifest: dict[str, Any]) -> tuple[bool, dict[str, Any]]:
            h.api.calls.append(("create", (manifest["kind"], manifest["metadata"]["name"])))
            return False, {"metadata": {"ownerReferences": [{"uid": "someone-else"}]}}

        h.api.create = foreign  # type: ignore[method-assign]
        await h.event("ADDED")
        await h.drain()
        assert "Job" not in [kind for kind, _ in h.api.names("create")]
        assert ("Warning", "RunnerIdentityConflict") in h.events
        assert h.sample("ambient_reconcile_errors_total", kind="IdentityConflictError") == 1

    asyncio.run(main())


def test_one_runner_network_policy_per_namespace_kept_true_by_its_watch(
    harness: Callable[[], Harness], make_body: Callable[..., dict[str, Any]]
) -> None:
    """Made before the first runner, not again for the next; deleted while runners are
    about, made again at once; changed by someone, no new runner until it is deleted."""

    async def main() -> None:
        h = harness()

        async def start(name: str, uid: str) -> None:
            h.put_session(make_body(name=name, uid=uid))
            await h.controller.session_event(
                "ADDED", h.api.sessions[(NS, name)], NS, name, h.indexes
            )
            await h.drain()

        def made() -> list[str]:
            return [n for kind, n in h.api.names("create") if kind == "NetworkPolicy"]

        await start("first", "5b1c2f4e-0000-4000-8000-000000000011")
        await start("second", "5b1c2f4e-0000-4000-8000-000000000012")
        assert made() == [network.RUNNER_NETWORK_POLICY]
        planned = network.runner_network_policy(NS, h.controller.settings)
        h.controller.state.namespace(NS).active_jobs.add("first-a1")
        await h.controller.network_policy_event("DELETED", planned, NS)
        assert made() == [network.RUNNER_NETWORK_POLICY] * 2, "made again at once"

        opened = copy.deepcopy(planned)
        opened["spec"]["ingress"] = [{}]
        await h.controller.network_policy_event("MODIFIED", opened, NS)
        h.api.create = lambda m: (  # type: ignore[method-assign]
            h.api.calls.append(("create", (m["kind"], m["metadata"]["name"])))
            or (m["kind"] != "NetworkPolicy", opened if m["kind"] == "NetworkPolicy" else m)
        )
        await start("third", "5b1c2f4e-0000-4000-8000-000000000013")
        jobs = [n for kind, n in h.api.names("create") if kind == "Job"]
        assert naming.job_name("third", 1) not in jobs
        assert ("Warning", "RunnerIdentityConflict") in h.events

    asyncio.run(main())


def test_the_cap_queues_a_session_beyond_it(
    settings: OperatorSettings,
    registry: Registry,
    now: datetime,
    make_body: Callable[..., dict[str, Any]],
    new_index: Callable[[], Any],
) -> None:
    async def main() -> None:
        h = Harness(
            settings.model_copy(update={"default_max_concurrent_sessions": 1}),
            registry,
            now,
            new_index,
        )
        h.put_session(make_body(name="first"))
        h.put_session(make_body(name="second", uid="5b1c2f4e-0000-4000-8000-000000000002"))
        for name in ("first", "second"):
            await h.controller.session_event(
                "ADDED", h.api.sessions[(NS, name)], NS, name, h.indexes
            )
        await h.drain()
        jobs = [name for kind, name in h.api.names("create") if kind == "Job"]
        assert jobs == [naming.job_name("first", 1)]
        status = h.api.names("patch_session_status")[-1]
        assert status["reason"] == "Queued"
        assert "second" in h.controller.state.namespace(NS).refused

    asyncio.run(main())


def test_usage_roll_up_patches_the_policy_status(
    harness: Callable[[], Harness], make_body: Callable[..., dict[str, Any]]
) -> None:
    async def main() -> None:
        h = harness()
        body = make_body(status={"phase": "Completed", "usage": {"cost": "1.50"}, "history": []})
        body["metadata"]["creationTimestamp"] = h.clock.now().strftime("%Y-%m-01T00:00:00Z")
        body["metadata"]["uid"] = "u-1"
        h.put_session(body)
        await h.controller.policy_usage_event("ADDED", NS, "default", {})
        (patch,) = h.api.names("patch_policy_status")
        assert patch["status"]["monthToDateSpend"] == "1.50"
        assert patch["status"]["ledger"] == [{"uid": "u-1", "charge": "1.50"}]
        await h.controller.policy_usage_event("DELETED", NS, "default", {})
        assert len(h.api.names("patch_policy_status")) == 1

    asyncio.run(main())


def test_the_controllers_loops_start_and_stop_with_the_supervisor(
    harness: Callable[[], Harness],
) -> None:
    async def main() -> None:
        h = harness()
        supervisor = Supervisor()
        h.controller.supervise(supervisor)
        assert supervisor.names == ["resync", "usage"]
        await supervisor.start()
        await asyncio.sleep(0)
        assert sorted(supervisor.running) == ["ambient-resync", "ambient-usage"]
        assert sorted(h.clock.sleeps) == [5.0, 60.0]  # the settings' intervals
        await supervisor.stop()
        assert supervisor.running == []

    asyncio.run(main())


def test_a_session_that_keeps_failing_is_retried_less_and_less_then_reset(
    harness: Callable[[], Harness], make_body: Callable[..., dict[str, Any]]
) -> None:
    """Per-Session backoff: 5 s, 10 s, 20 s ... (no jitter at draw 0.5), the resync loop
    leaves the Session alone until its time, the condition shows the count, and a success
    resets it all."""

    async def main() -> None:
        h = harness()
        state = await h.failing(make_body())
        waits = []
        for failures in range(1, 5):
            assert state.failures == failures
            assert state.retry_at is not None
            wait = state.retry_at - h.clock.mono
            waits.append(wait)
            (condition,) = h.api.names("apply_session_condition")[-1:]
            assert condition["type"] == "ReconcileFailing"
            assert condition["status"] == "True"
            assert condition["reason"] == "RuntimeError"
            assert condition["message"].startswith(f"{failures} consecutive")
            assert "quota exceeded" in condition["message"]
            h.clock.mono += wait - 0.5  # not yet: the resync loop skips it
            await h.controller.resync()
            assert len(h.controller.queue) == 0
            h.clock.mono += 0.5
            await h.controller.resync()
            assert len(h.controller.queue) == 1
            await h.drain()
        assert waits == [5.0, 10.0, 20.0, 40.0]
        h.api.fail_create = None
        h.clock.mono += 80
        await h.controller.resync()
        await h.drain()
        assert (state.failures, state.retry_at, state.failed) == (0, None, False)
        last = h.api.names("apply_session_condition")[-1]
        assert (last["status"], last["reason"]) == ("False", "Reconciled")

    asyncio.run(main())


def test_a_look_at_the_queue_does_not_wake_a_session_in_its_backoff(
    harness: Callable[[], Harness], make_body: Callable[..., dict[str, Any]]
) -> None:
    """Each resync looks at every namespace's queue and wakes the Sessions that want a Job
    and have room; one whose Job create keeps failing wants a Job too, but is left to
    its backoff (it was woken every resync, 5 s, whatever its backoff said)."""

    async def main() -> None:
        h = harness()
        state = await h.failing(make_body())
        assert state.failures == 1
        h.clock.mono += 4.0  # the first backoff is 5 s
        await h.controller.resync()
        h.clock.fire()
        assert len(h.controller.queue) == 0
        h.clock.mono += 1.0
        await h.controller.resync()
        h.clock.fire()
        assert len(h.controller.queue) == 1  # due: queued once, by both paths
        await h.drain()
        assert state.failures == 2

    asyncio.run(main())


def test_during_its_backoff_a_failing_session_waits_unless_a_person_changes_it(
    harness: Callable[[], Harness], make_body: Callable[..., dict[str, Any]]
) -> None:
    """Status writes (its own ReconcileFailing condition among them) do not bring a failing
    Session back before its time, or it would retry as fast as its own writes come back;
    an approval or a cancel does."""

    async def main() -> None:
        h = harness()
        await h.failing(make_body())
        body = h.api.sessions[KEY]
        body["metadata"]["resourceVersion"] = "99"
        body["status"] = {"conditions": [{"type": "ReconcileFailing", "status": "True"}]}
        await h.event("MODIFIED")
        assert len(h.controller.queue) == 0
        body["metadata"]["annotations"] = {naming.ANNOTATION_APPROVED_BY: "alice"}
        await h.event("MODIFIED")
        assert len(h.controller.queue) == 1

    asyncio.run(main())


def test_the_index_keeps_no_large_framework_config() -> None:
    """Issue 17, finding 9: what the operator holds per Session is bounded; a large
    config is read with the whole body only when the Job is created."""
    body = {
        "metadata": {"name": "s", "managedFields": [{"big": "x" * 10_000}]},
        "spec": {"framework": {"type": "script", "config": {"blob": "x" * 10_000}}},
        "status": {},
    }
    kept = slim(body, 4096)
    assert kept["spec"]["framework"] == {"type": "script", "config": {}}
    assert kept["_payloadOmitted"] is True and "managedFields" not in kept["metadata"]
    small = slim({**body, "spec": {"framework": {"type": "script", "config": {"a": 1}}}}, 4096)
    assert small["spec"]["framework"]["config"] == {"a": 1} and not small["_payloadOmitted"]


def test_indexed_sessions_share_their_keys_and_short_strings(
    make_body: Callable[..., dict[str, Any]],
) -> None:
    """Each decoded body has its own copy of every key and of the values many Sessions
    repeat; the index keeps one of each (what holds 10,000 Sessions in 300 MiB). Counted
    by tracemalloc, which counts allocations, not time."""
    import tracemalloc  # noqa: PLC0415

    condition = {
        "type": "WorkloadCreated",
        "status": "True",
        "reason": "WorkloadCreated",
        "message": "runner Job review-pr-42-a1 created",
        "lastTransitionTime": "2026-03-01T12:00:00Z",
        "observedGeneration": 1,
    }
    status = {"phase": "Pending", "reason": "WorkloadCreated", "conditions": [condition] * 4}
    text = json.dumps(make_body(status=status))

    def held(keep: Callable[[dict[str, Any]], Any]) -> int:
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            kept = [keep(json.loads(text)) for _ in range(200)]
            size = tracemalloc.get_traced_memory()[0] - before
        finally:
            tracemalloc.stop()
        assert len(kept) == 200
        return size

    plain = held(lambda body: {k: body[k] for k in ("metadata", "spec", "status")})
    indexed = held(lambda body: slim(body, 4096))
    assert indexed < 0.7 * plain, (indexed, plain)
    decoded = json.loads(text)
    same = {k: decoded[k] for k in ("metadata", "spec", "status")}
    assert slim(decoded, 4096) == {**same, "_payloadOmitted": False}  # the same content


def test_in_a_burst_the_settle_time_is_longer_and_a_sessions_wait_ends_with_its_write(
    harness: Callable[[], Harness], make_body: Callable[..., dict[str, Any]]
) -> None:
    """With many Sessions waiting at once the settle time grows (up to
    ``settle_max_seconds``); a Session that is written, or deleted, waits no more."""

    async def main() -> None:
        h = harness()
        s = h.controller.settings
        others = {("team-beta", f"s{i}") for i in range(2 * s.settle_busy_sessions)}
        h.controller.state.settling.update(others)
        job = await _job_just_created(h, make_body())
        settle = [delay for delay, _ in h.clock.timers if delay > s.settle_seconds]
        waiting = len(others) + 1
        expected = min(s.settle_max_seconds, s.settle_seconds * waiting / s.settle_busy_sessions)
        assert expected > s.settle_seconds
        assert settle == [pytest.approx(expected, rel=0.01)]
        assert KEY in h.controller.state.settling
        await _job_changed(h, job, FINISHED, "Succeeded")  # an outcome: written at once
        assert len(h.api.names("patch_session_status")) == 1
        assert KEY not in h.controller.state.settling
        assert h.controller.state.settling == others

        h.controller.state.settling.add(KEY)
        h.controller.forget(KEY)
        assert KEY not in h.controller.state.settling

    asyncio.run(main())
