"""The Session controller: the work queue, the workers, and reconcile.

Level-triggered: every event for a Session or its Job marks the Session dirty in the work
queue; a fixed pool of workers reconciles dirty Sessions, each reading the latest observed
state from the watch-fed indexes (and the runner pod, read when the Job's counters say it
moved), asking the pure planner what to do, and doing it. No progress is stored on the
objects, so the only writes are the Job (with its runner identity) and the Session's
status. A status write carries the resourceVersion it was computed from; on a conflict
the Session is re-read and the plan made again.

Reconcile is entered one way only, by the workers: events, policy changes, the resync
loop and freed slots all queue keys, so the number of reconciles at once is bounded by
the workers. kopf stays in ``adapter.py``; everything here is given to the controller
(API client, clock, settings, runner registry, metrics), and what it remembers lives in
one ``StateStore``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import random
import sys
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from functools import partial
from typing import Any, TypeVar, cast

import pydantic

from ambient.common import logs
from ambient.common.audit import trail as audit
from ambient.common.audit.records import record as audit_record
from ambient.common.kube.client import ConflictError, GoneError, Kube
from ambient.crds import naming, times
from ambient.crds.models import Session, SessionStatus
from ambient.operator import usage
from ambient.operator.clock import Clock
from ambient.operator.gate import JOB_INDEX, SESSION_INDEX, Gate, namespace_sessions
from ambient.operator.history.archiver import Archiver
from ambient.operator.metrics import OperatorMetrics
from ambient.operator.notify.outbox import Outbox
from ambient.operator.policies import PolicyCache
from ambient.operator.replies.sender import Replier
from ambient.operator.sessions import announce, backoff, capacity, lifecycle, network
from ambient.operator.sessions.creation import conflict, creation, untrusted_context
from ambient.operator.sessions.observe import (
    JobView,
    PodView,
    job_view,
    newest_pod,
    pod_outdated,
    pod_view,
    pod_waits,
)
from ambient.operator.sessions.planner import Observed, Plan, only_progress, plan
from ambient.operator.sessions.settle import settle_time
from ambient.operator.sessions.status import wire
from ambient.operator.settings import OperatorSettings
from ambient.operator.state import Key, SessionState, StateStore
from ambient.operator.supervisor import Supervisor, every
from ambient.operator.workqueue import PROGRESS, START, WorkQueue
from ambient.runners import registry as runner_registry

log = logging.getLogger("ambient.operator")
T = TypeVar("T")

SLIM = "_payloadOmitted"
"""Marks an indexed Session body whose large trigger payload was left out."""
TERMINAL = ("Completed", "Failed")

PostEvent = Callable[[dict[str, Any], str, str, str], None]
"""Posts a Kubernetes Event: (the object's reference, type, reason, message)."""


TRACE = naming.ANNOTATION_TRACE_ID


def _intent(body: Mapping[str, Any]) -> tuple[Any, str]:
    """What a person changes to act on a Session: its spec (the generation) and its
    annotations (approval, cancel-by)."""
    meta = body.get("metadata") or {}
    return meta.get("generation"), json.dumps(meta.get("annotations") or {}, sort_keys=True)


def _describe(exc: Exception) -> str:
    """One line on an error for a condition: its kind and its first line, bounded."""
    first = (str(exc).splitlines() or [""])[0]
    return f"{type(exc).__name__}: {first}"[:512]


def index_key(namespace: str | None, session: str) -> Key:
    """The Session index's key: Job and Pod labels carry the (shortened) Session name."""
    return (namespace or "", naming.session_label_value(session))


def slim(body: Mapping[str, Any], payload_limit: int) -> dict[str, Any]:
    """A Session body without managed fields, and without its trigger payload and its
    framework config when either is larger than ``payload_limit``: enough to plan, small
    to keep for every Session (the index is what the operator holds per Session; the
    whole body is read only to create the Job, issue 17 finding 9)."""
    spec = dict(body.get("spec", {}))
    trigger = dict(spec.get("trigger", {}))
    payload = trigger.get("payload")
    omitted = bool(payload) and len(json.dumps(payload)) > payload_limit
    if omitted:
        trigger["payload"] = {}
    spec["trigger"] = trigger
    framework = dict(spec.get("framework", {}))
    config = framework.get("config")
    if config and len(json.dumps(config)) > payload_limit:
        framework["config"] = {}
        spec["framework"] = framework
        omitted = True
    metadata = {k: v for k, v in body.get("metadata", {}).items() if k != "managedFields"}
    return {
        "metadata": shared(metadata),
        "spec": shared(spec),
        "status": shared(body.get("status", {})),
        SLIM: omitted,
    }


SHARED_TEXT = 64
"""Strings up to this long are interned in the index (names, reasons, timestamps)."""


def shared(value: Any) -> Any:
    """A copy of decoded JSON whose keys and short strings are interned. Each decoded body
    has its own copy of every key ("lastTransitionTime", "observedGeneration", ...) and of
    values that thousands of Sessions repeat ("True", "Pending", the operator's name):
    shared, an indexed Session takes about half the memory (5 KiB instead of 10 in
    ``tests/unit/operator/test_controller.py``), which is what holds 10,000 Sessions
    under 300 MiB."""
    if isinstance(value, Mapping):
        return {sys.intern(str(k)): shared(v) for k, v in value.items()}
    if isinstance(value, list):
        return [shared(v) for v in value]
    if isinstance(value, str) and len(value) <= SHARED_TEXT:
        return sys.intern(value)
    return value


class IdentityConflictError(Exception):
    """A runner identity object exists under the Session's name but is not its own."""

    def __init__(self, session: Session, message: str) -> None:
        super().__init__(message)
        self.session = session
        self.message = message


class ContextConflictError(IdentityConflictError):
    """The context ConfigMap exists under the Session's name but is not the one the
    operator would write."""


class Controller:
    """Reconciles Sessions into runner Jobs; see the module's docstring."""

    def __init__(
        self,
        *,
        api: Kube,
        clock: Clock,
        settings: OperatorSettings,
        registry: runner_registry.Registry,
        metrics: OperatorMetrics,
        post_event: PostEvent,
        policies: PolicyCache | None = None,
        state: StateStore | None = None,
        archiver: Archiver | None = None,
        outbox: Outbox | None = None,
        replier: Replier | None = None,
        emit_audit: Callable[[dict[str, Any]], None] = audit.emit,
        draw: Callable[[], float] = random.random,
    ) -> None:
        self.api = api
        # The retry backoff's jitter (a fake gives tests exact delays).
        self.draw = draw
        self.backoff = backoff.Backoff(settings.retry_base_seconds, settings.retry_max_seconds)
        self.clock = clock
        self.settings = settings
        self.registry = registry
        self.metrics = metrics
        self.post_event = post_event
        # NamespacePolicies, listed once before any Session is planned (so a restart
        # never admits under a default cap), then kept by the watch. The one copy the
        # lifecycle, notifications and the usage roll-up read.
        self.policies = policies if policies is not None else PolicyCache()
        self.state = state if state is not None else StateStore()
        self.archiver = archiver
        self.outbox = outbox
        self.replier = replier
        self.emit_audit = emit_audit
        # Events only mark Sessions dirty; settings.workers tasks reconcile them, Sessions
        # that need their Job first. Memory in flight is bounded by the workers.
        self.queue: WorkQueue[Key] = WorkQueue()
        self._workers: list[asyncio.Task[None]] = []
        # kopf hands its indexes to handlers only; the workers read them through this.
        self._indexes: dict[str, Any] = {}
        self.gate = Gate(
            state=self.state,
            clock=clock,
            settings=settings,
            policies=self.policies,
            indexes=self._indexes,
            wake=self._wake_queued,
        )

    # --- what the adapter hands in --------------------------------------------------------

    def index_session(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """What the Session index keeps of a Session."""
        return slim(body, self.settings.indexed_payload_bytes)

    async def session_event(
        self,
        kind: str | None,
        body: Mapping[str, Any],
        namespace: str | None,
        name: str,
        indexes: Mapping[str, Any],
    ) -> None:
        """Any change to a Session (including the initial listing after a restart)."""
        ident = (namespace or "", name)
        if kind == "DELETED":
            self.forget(ident)
            return
        self._indexes.update(indexes)
        state = self.state.get(ident)
        status = body.get("status") or {}
        self.gate.session_seen(ident[0], name, status.get("phase") in TERMINAL)
        written = state.written
        if written is not None and body.get("metadata", {}).get("resourceVersion") != written[0]:
            state.written = None  # the watch caught up with (or passed) our write
        state.phase = (status.get("phase") or "Pending", status.get("reason") or "")
        if self._backing_off(state, body):
            return  # the resync loop retries it when its backoff ends
        needs_start = self._needs_start(ident, state, body, indexes[JOB_INDEX])
        self.queue.add(ident, START if needs_start else PROGRESS)
        if self.outbox is not None:
            await self.outbox.session_changed(body)
        if self.replier is not None:
            await self.replier.session_changed(body)

    async def job_event(
        self,
        kind: str | None,
        body: Mapping[str, Any],
        namespace: str | None,
        labels: Mapping[str, str],
        indexes: Mapping[str, Any],
    ) -> None:
        """A runner Job changed: reconcile its Session; one that finished or went frees a
        slot, so wake the queue."""
        self._indexes.update(indexes)
        ns = namespace or ""
        for session in indexes[SESSION_INDEX].get((ns, labels.get(naming.LABEL_SESSION, "")), []):
            self._progress((ns, session["metadata"]["name"]))
        name = body.get("metadata", {}).get("name", "")
        active = kind != "DELETED" and lifecycle.job_active(job_view(dict(body)))
        self.gate.job_changed(ns, name, active)

    async def policy_event(
        self,
        kind: str | None,
        body: Mapping[str, Any],
        namespace: str | None,
        indexes: Mapping[str, Any],
    ) -> None:
        """A NamespacePolicy changed: queue the namespace's unfinished Sessions for a
        fresh plan against it (timeouts, compliance), and admit queued ones if the cap
        grew."""
        self._indexes.update(indexes)
        self.keep_policy(body, deleted=kind == "DELETED")
        ns = namespace or ""
        signature = lifecycle.policy_signature(self.policies.policy(ns), self.clock.now())
        space = self.state.namespace(ns)
        if space.policy_seen == signature:
            return
        space.policy_seen = signature
        for item in namespace_sessions(ns, indexes[SESSION_INDEX]):
            if (item.get("status") or {}).get("phase") not in TERMINAL:
                self._force((ns, item["metadata"]["name"]), PROGRESS)
        self.gate.kick(ns)

    async def policy_usage_event(
        self, kind: str | None, namespace: str | None, name: str, status: Mapping[str, Any]
    ) -> None:
        """A NamespacePolicy appeared or changed: bring its spend figure up to date."""
        if kind != "DELETED":
            await self.roll_up_usage(namespace or "", name, dict(status))

    def forget(self, ident: Key) -> None:
        """The Session was deleted: drop its queue entry and everything known of it."""
        self.queue.discard(ident)
        self.state.forget(ident)

    # --- workers --------------------------------------------------------------------------

    def start_workers(self, indexes: Mapping[str, Any]) -> None:
        """Start the reconcile workers from the first handler call: tasks copy the context
        they are made in, and kopf's Events need a handler's context to be posted."""
        if self._workers:
            return
        self._indexes.update(indexes)
        self._workers.extend(
            asyncio.create_task(self._work(), name=f"reconcile-{i}")
            for i in range(self.settings.workers)
        )

    async def stop(self) -> None:
        """Stop the workers."""
        workers, self._workers = self._workers, []
        for task in workers:
            task.cancel()
        await asyncio.gather(*workers, return_exceptions=True)

    async def _work(self) -> None:
        """One reconcile worker: take a dirty Session, reconcile it, repeat. A reconcile
        that fails is remembered by ``reconcile`` and queued again by the resync loop."""
        while True:
            ident, priority = await self.queue.get()
            try:
                await self.work_on(ident, priority)
            finally:
                self.queue.done(ident)

    async def work_on(self, ident: Key, priority: int = PROGRESS) -> None:
        """Reconcile one queued Session, if the index still holds it."""
        state = self.state.peek(ident)
        force = state is not None and state.forced
        if state is not None:
            state.forced = False
        body = self._indexed(ident)
        if body is not None:
            await self.reconcile(
                ident[0],
                ident[1],
                body,
                self._indexes[JOB_INDEX],
                start=priority == START,
                force=force,
            )

    def _wake_queued(self, ident: Key) -> None:
        """The gate has room for a queued Session: plan it now, unless it is waiting out
        its backoff. The resync loop retries it when due; waking it at every look at the
        queue (each resync looks where someone waits) would retry it every few seconds."""
        state = self.state.peek(ident)
        if state is None or not self._in_backoff(state):
            self._force(ident, START)

    def _force(self, ident: Key, priority: int = PROGRESS) -> None:
        """Queue a plan that must not be skipped as unchanged."""
        self.state.get(ident).forced = True
        self.queue.add(ident, priority)

    def _indexed(self, ident: Key) -> dict[str, Any] | None:
        """The Session's body as the index holds it, or None once it is gone."""
        sessions = self._indexes.get(SESSION_INDEX)
        if sessions is None:
            return None
        for body in sessions.get(index_key(*ident), []):
            if body["metadata"]["name"] == ident[1]:
                return cast(dict[str, Any], body)
        return None

    def _needs_start(
        self, ident: Key, state: SessionState, body: Mapping[str, Any], jobs: Any
    ) -> bool:
        """A live Session with no Job yet: creating it is the most urgent work there is."""
        if body.get("status", {}).get("phase") in TERMINAL or state.created is not None:
            return False
        return not jobs.get(index_key(*ident))

    def _progress(self, ident: Key) -> None:
        """Mark a Session dirty for its Job's progress, once the progress interval since
        its last status write has passed (see ``progress_interval_seconds``)."""
        state = self.state.get(ident)
        last = state.recorded
        interval = self.settings.progress_interval_seconds
        wait = 0.0 if last is None else last + interval - self.clock.monotonic()
        if wait <= 0:
            self.queue.add(ident, PROGRESS)
        elif not state.deferred:
            state.deferred = True
            self.clock.call_later(wait, partial(self._undefer, ident))

    def _undefer(self, ident: Key) -> None:
        state = self.state.peek(ident)
        if state is None:  # deleted meanwhile
            return
        state.deferred = False
        self.queue.add(ident, PROGRESS)

    # --- reconcile ------------------------------------------------------------------------

    async def reconcile(
        self,
        namespace: str,
        name: str,
        body: dict[str, Any],
        jobs: Any,
        *,
        start: bool = False,
        force: bool = False,
    ) -> None:
        """Plan and act for one Session, serialised per Session within this process.

        With ``start``, only the Session's objects are created: recording that in its
        status is queued as progress, behind the other Sessions still waiting for their
        Job. kopf does not retry event handlers, so a failed reconcile is remembered and
        the resync loop queues it again; ``force`` skips the check for an unchanged
        observation. Each reconcile's duration is recorded, and each failure by kind."""
        ident = (namespace, name)
        state = self.state.get(ident)
        annotations = (body.get("metadata") or {}).get("annotations") or {}
        trace = {"trace_id": annotations[TRACE]} if TRACE in annotations else {}
        with logs.bound(session=f"{namespace}/{name}", **trace):
            await self._reconcile_locked(ident, state, body, jobs, start=start, force=force)

    async def _reconcile_locked(
        self,
        ident: Key,
        state: SessionState,
        body: dict[str, Any],
        jobs: Any,
        *,
        start: bool,
        force: bool,
    ) -> None:
        async with state.lock:
            began = self.clock.monotonic()
            try:
                if force:
                    state.last_seen = None
                await self._reconcile(ident, state, body, jobs, start)
                if state.failures:
                    await self._recovered(ident, state)
                state.failed = False
            except GoneError:
                return
            except ContextConflictError as exc:
                self._count_error(exc)
                self._warn(exc.session, "RunnerContextConflict", exc.message)
            except IdentityConflictError as exc:
                self._count_error(exc)
                self._warn(exc.session, "RunnerIdentityConflict", exc.message)
            except Exception as exc:
                self._count_error(exc)
                retry_in = self._failed(state, body)
                log.exception(
                    "Session %s/%s: reconcile failed (%d in a row); retried in %.1fs",
                    *ident,
                    state.failures,
                    retry_in,
                )
                await self._show_failing(ident, state, exc, retry_in)
            finally:
                self.metrics.reconcile_seconds.observe(self.clock.monotonic() - began)

    def _backing_off(self, state: SessionState, body: Mapping[str, Any]) -> bool:
        """A failing Session waits out its backoff, whatever status writes (its own
        ReconcileFailing condition among them) the watch shows; a change of its spec or
        annotations (a cancel, an approval) is acted on at once."""
        return self._in_backoff(state) and state.failed_on == _intent(body)

    def _in_backoff(self, state: SessionState) -> bool:
        """The Session's last reconcile failed and its next try is not due yet."""
        due = state.retry_at
        return state.failed and due is not None and due > self.clock.monotonic()

    def _failed(self, state: SessionState, body: Mapping[str, Any]) -> float:
        """Count a failed reconcile and set when the resync loop may try again."""
        state.failed_on = _intent(body)
        state.failed = True
        state.failures += 1
        retry_in = self.backoff.delay(state.failures, self.draw())
        state.retry_at = self.clock.monotonic() + retry_in
        return retry_in

    async def _show_failing(
        self, ident: Key, state: SessionState, exc: Exception, retry_in: float
    ) -> None:
        """Condition ReconcileFailing=True with the count and the error, applied as its own
        list entry (server-side apply, keyed by type) so it touches nothing else of the
        status. Best effort: the API may be what fails."""
        message = backoff.failing_message(state.failures, _describe(exc), retry_in)
        await self._apply_condition(ident, True, type(exc).__name__, message)

    async def _recovered(self, ident: Key, state: SessionState) -> None:
        state.failures = 0
        state.retry_at = None
        state.failed_on = None
        await self._apply_condition(ident, False, "Reconciled", "the last reconcile succeeded")

    async def _apply_condition(self, ident: Key, status: bool, reason: str, message: str) -> None:
        condition = {
            "type": backoff.CONDITION,
            "status": "True" if status else "False",
            "reason": reason[:1024],
            "message": message,
            "lastTransitionTime": times.rfc3339(self.clock.now()),
        }
        try:
            await self._call(self.api.apply_session_condition, *ident, condition)
        except Exception as exc:  # the failure itself is already logged and counted
            log.warning(
                "Session %s/%s: condition %s not written: %s", *ident, backoff.CONDITION, exc
            )

    def _count_error(self, exc: Exception) -> None:
        self.metrics.reconcile_errors.labels(kind=type(exc).__name__).inc()

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        """One API call on a worker thread (the pool is sized to the client's connections)."""
        return await asyncio.to_thread(fn, *args)

    async def _reconcile(
        self, ident: Key, state: SessionState, body: dict[str, Any], jobs: Any, start: bool
    ) -> None:
        api = self.api
        namespace, name = ident
        body = self._freshest(state, body)
        job_name = naming.job_name(name, (body.get("status") or {}).get("attempt") or 1)
        seen = self._observe(state, index_key(namespace, name), job_name, jobs)
        fingerprint = (body["metadata"].get("resourceVersion", ""), seen.job, seen.pod, seen.others)
        if state.last_seen == fingerprint:
            return
        override_job: JobView | None = None
        override_pod: PodView | None = None
        attempts = self.settings.reconcile_attempts
        for _attempt in range(attempts):
            try:
                session = Session.model_validate(body)
            except pydantic.ValidationError as exc:
                log.error("Session %s/%s cannot be read: %s", namespace, name, exc)
                return
            if naming.job_name(name, session.status.attempt or 1) != job_name:
                # A re-read body moved to another attempt: start over from it.
                return await self._reconcile(ident, state, body, jobs, start)
            if (archived := await self._archive_first(ident, state, session)) is not None:
                body = archived
                continue
            observed = Observed(
                job=override_job or seen.job, pod=override_pod or seen.pod, others=seen.others
            )
            now = self.clock.now()
            runner = self._runner(session)
            ctx = self._context(session, now)
            result = plan(session, observed, runner, self.settings, now, context=ctx)
            self._remember_deadline(state, session, result, ctx, runner)

            confirmed = await self._confirm(state, session, observed, job_name)
            if confirmed is not None:
                override_job = confirmed.job or override_job
                override_pod = confirmed.pod or override_pod
                continue

            if result.create:
                if body.get(SLIM):
                    body = await self._call(api.get_session, namespace, name)
                    continue
                replan = partial(plan, session, observed, runner, self.settings, now)
                result, existing = await self._start(
                    result,
                    session=session,
                    body=body,
                    job_name=job_name,
                    ctx=ctx,
                    jobs=jobs,
                    replan=replan,
                )
                if existing is not None:
                    override_job = existing
                    continue
                if self._job_created(ident, state, result, start):
                    return
            if result.status is None:
                await self._delete(namespace, result.delete)
                state.last_seen = fingerprint
                return
            if self._settling(ident, state, result.status):
                return  # the next news (a Job event) or the settle timer writes it
            if not await self._write(ident, state, session, body.get("status"), result, seen):
                body = await self._call(api.get_session, namespace, name)
                continue
            return
        log.warning(
            "Session %s/%s: gave up after %d conflicting attempts", namespace, name, attempts
        )

    def _observe(self, state: SessionState, key: Key, job_name: str, jobs: Any) -> Observed:
        mine: list[JobView] = list(jobs.get(key, []))
        job = next((j for j in mine if j.name == job_name), None)
        if job is None:
            created = state.created
            job = created if created is not None and created.name == job_name else None
        else:
            state.created = None  # the watch has caught up
        others = tuple(j for j in mine if j.name != job_name)
        return Observed(job=job, pod=state.pods.get(job_name), others=others)

    def _freshest(self, state: SessionState, body: dict[str, Any]) -> dict[str, Any]:
        """The body from the watch, or the one this process wrote if the watch lags."""
        written = state.written
        if written is None:
            return body
        if body["metadata"].get("resourceVersion") == written[0]:
            return written[1]
        state.written = None
        return body

    def _runner(
        self, session: Session
    ) -> runner_registry.ResolvedRunner | runner_registry.UnknownFrameworkError:
        framework = session.spec.framework
        try:
            return runner_registry.resolve(
                self.registry, framework.type, framework.version, self.settings.image_registry
            )
        except runner_registry.UnknownFrameworkError as exc:
            return exc

    def _context(self, session: Session, now: datetime) -> lifecycle.Context:
        return capacity.policy_context(
            self.policies.policy(session.metadata.namespace),
            session,
            registry=self.registry,
            identity=self.settings.identity,
            default_cap=self.settings.default_max_concurrent_sessions,
            now=now,
            require_policy=self.settings.require_namespace_policy,
        )

    def _remember_deadline(
        self,
        state: SessionState,
        session: Session,
        result: Plan,
        ctx: lifecycle.Context,
        runner: runner_registry.ResolvedRunner | runner_registry.UnknownFrameworkError,
    ) -> None:
        if isinstance(runner, runner_registry.UnknownFrameworkError):
            return
        status = result.status or session.status
        timeout = lifecycle.effective_timeout(session, ctx.lifecycle, runner.timeout_seconds)
        deadline = lifecycle.next_deadline(status, ctx.lifecycle, timeout)
        state.deadline = None if deadline is None else deadline.timestamp()

    def _job_created(self, ident: Key, state: SessionState, result: Plan, start: bool) -> bool:
        """Remember the Job this pass created (the gate may have queued the Session
        instead). True when its status write is left to the progress pass, behind
        Sessions still waiting for their Job."""
        job = next((m for m in result.create if m["kind"] == "Job"), None)
        if job is None:
            return False
        state.created = job_view(job)
        if result.status is not None and (news := only_progress(result.status)) is not None:
            self._open_settle_window(ident, state, news)
        if not start:
            return False
        state.recorded = self.clock.monotonic()
        self._progress(ident)
        return True

    def _open_settle_window(self, ident: Key, state: SessionState, news: tuple[str, ...]) -> bool:
        waiting = self.state.settling
        waiting.add(ident)
        s = self.settings
        settle = settle_time(
            s.settle_seconds, s.settle_max_seconds, s.settle_busy_sessions, len(waiting)
        )
        if settle <= 0:
            waiting.discard(ident)
            return False
        state.settle_news = news
        state.settle_until = self.clock.monotonic() + settle
        state.settle_window += 1
        self.clock.call_later(settle, partial(self._settled, ident, state.settle_window))
        return True

    def _settling(self, ident: Key, state: SessionState, status: SessionStatus) -> bool:
        """Whether the planned status only says the work goes on (the Job created, the pod
        running) and waits (``settle_seconds``) to go with the next news in one write: the
        pod's start, or the outcome of a short run. Each such news waits once; an outcome,
        a stuck pod or any other change is written at once."""
        news = only_progress(status)
        until = state.settle_until
        if news is None:
            self._window_over(ident, state)
            return False
        if until is not None:
            if until > self.clock.monotonic():
                return True
            self._window_over(ident, state)  # waited long enough: write it
            state.settle_news = news
            return False
        if state.settle_news == news:
            return False
        return self._open_settle_window(ident, state, news)

    def _settled(self, ident: Key, window: int) -> None:
        """The settle time of ``window`` passed: write whatever the status holds now."""
        state = self.state.peek(ident)
        if state is None or state.settle_until is None or state.settle_window != window:
            return  # deleted, written meanwhile, or another window waits now
        state.settle_until = -math.inf  # over, whatever the clock the timer ran on says
        self.state.settling.discard(ident)
        self._force(ident, PROGRESS)

    def _window_over(self, ident: Key, state: SessionState) -> None:
        state.settle_until = None
        self.state.settling.discard(ident)

    async def _archive_first(
        self, ident: Key, state: SessionState, session: Session
    ) -> dict[str, Any] | None:
        """Archive the oldest history entries when due, before planning, so the window has
        room for what the plan appends. Returns the body to plan from next, or None when
        nothing was due."""
        step = self.archiver.due(session) if self.archiver is not None else None
        if step is None or self.archiver is None:
            return None
        updated = await self.archiver.archive(session, step)
        if updated is None:
            return await self._call(self.api.get_session, *ident)
        kept = self.index_session(updated)
        state.written = (session.metadata.resource_version, kept)
        return kept

    async def _write(  # noqa: PLR0917 - one call site, the reconcile loop
        self,
        ident: Key,
        state: SessionState,
        session: Session,
        stored: dict[str, Any] | None,
        result: Plan,
        seen: Observed,
    ) -> bool:
        """Write what the plan changed in the status ``stored`` at the Session's
        resourceVersion, as one JSON patch guarded by it; False on a conflict."""
        assert result.status is not None
        status = wire(result.status)
        sent_rv = session.metadata.resource_version
        try:
            updated = await self._call(
                self.api.patch_session_status, *ident, sent_rv, stored, status
            )
        except ConflictError:
            return False
        state.written = (sent_rv, self.index_session(updated))
        state.recorded = self.clock.monotonic()
        state.last_seen = (
            updated["metadata"]["resourceVersion"],
            seen.job,
            seen.pod,
            seen.others,
        )
        self._announce(session, result)
        await self._delete(ident[0], result.delete)
        return True

    async def _confirm(
        self, state: SessionState, session: Session, observed: Observed, job_name: str
    ) -> Observed | None:
        """Read what the watches do not carry, or not yet: a Job this process created
        before the watch delivered it, and the runner pod when the Job's state moved past
        it.

        Pods are read, not watched: a watch would deliver every pod update of every
        Session to this process, and the Job's counters say when a read is worth it."""
        namespace = session.metadata.namespace
        if observed.job is None and session.status.workload.job_name:
            found = await self._call(self.api.get_job, namespace, job_name)
            if found is not None:
                return Observed(job=job_view(found))
        job = observed.job
        if job is None:
            return None
        ident = (namespace, session.metadata.name)
        due = state.pod_due == job_name
        fresh: PodView | None = None
        if pod_outdated(job, observed.pod, due):
            state.pod_due = ""
            for consistent in (False, True):
                listed = await self._call(self.api.list_pods, namespace, job_name, consistent)
                fresh = newest_pod([pod_view(p) for p in listed], job_name)
                if fresh is not None and not pod_outdated(job, fresh):
                    break
            if fresh is not None:
                state.pods[job_name] = fresh
        self._recheck_later(state, ident, job, state.pods.get(job_name))
        if fresh is not None and fresh != observed.pod:
            return Observed(pod=fresh)
        return None

    def _recheck_later(
        self, state: SessionState, ident: Key, job: JobView, pod: PodView | None
    ) -> None:
        """A pod that waits to start is read later, not when its Job first counts it:
        only its own status says that its image cannot be pulled (the Job's counters stay
        as they are). Each time it is still Pending the wait doubles, up to
        ``pod_recheck_max_seconds``: in a burst the scheduler keeps thousands of pods
        Pending for minutes, and reading each every 30 s would add more requests than the
        burst itself. A pod that starts soon (the common case) is read once, when its Job
        counts it ready."""
        base = self.settings.pod_recheck_seconds
        if not pod_waits(job, pod) or base <= 0:
            state.pod_rechecks = (job.name, 0)
            return
        if state.pod_recheck:
            return
        job_name = job.name
        counted, done = state.pod_rechecks
        done = done if counted == job_name else 0
        state.pod_rechecks = (job_name, done)
        delay = min(base * 2**done, max(self.settings.pod_recheck_max_seconds, base))
        state.pod_recheck = True
        self.clock.call_later(delay, partial(self._recheck_pod, ident, job_name))

    def _recheck_pod(self, ident: Key, job_name: str) -> None:
        state = self.state.peek(ident)
        if state is None:
            return  # deleted
        state.pod_recheck = False
        pod = state.pods.get(job_name)
        if pod is not None and pod.phase != "Pending":
            return  # read since, and no longer waiting
        job, done = state.pod_rechecks
        state.pod_rechecks = (job_name, done + 1 if job == job_name else 1)
        state.pod_due = job_name  # the next reconcile reads it (observe.pod_outdated)
        self._force(ident, PROGRESS)

    async def _delete(self, namespace: str, names: Iterable[str]) -> None:
        for name in names:
            await self._call(self.api.delete_job, namespace, name)

    # --- creating a Session's objects, under the concurrency cap --------------------------

    async def _start(
        self,
        result: Plan,
        *,
        session: Session,
        body: dict[str, Any],
        job_name: str,
        ctx: lifecycle.Context,
        jobs: Any,
        replan: Callable[..., Plan],
    ) -> tuple[Plan, JobView | None]:
        """Create the planned Job if the cap admits it; else the plan that queues it."""
        namespace = session.metadata.namespace
        admission = await self.gate.admit(namespace, body, job_name, jobs)
        if not admission.admitted:
            queued = capacity.queued_context(ctx, admission, self.gate.cap(namespace))
            return replan(context=queued), None
        try:
            existing = await self._create(result, session)
        except Exception:
            self.gate.release(namespace, job_name)
            raise
        return result, existing

    async def _create(self, result: Plan, session: Session) -> JobView | None:
        """Create the planned objects (the runner identity first, see ``creation``);
        return the Job that already existed, if one did."""
        steps = creation(result.create, session)
        if steps.identity and self.settings.runner_network_policy:
            await self._ensure_network_policy(session)
        for step in steps.identity:
            if len(step) == 1:
                outcomes = [await self._call(self.api.create, step[0])]
            else:
                outcomes = list(
                    await asyncio.gather(*(self._call(self.api.create, m) for m in step))
                )
            for manifest, (created, existing) in zip(step, outcomes, strict=True):
                message = conflict(manifest, created, existing, session)
                if message is not None:
                    # Every later event retries, so removing the object heals it.
                    meta = session.metadata
                    log.error("Session %s/%s: %s", meta.namespace, meta.name, message)
                    raise IdentityConflictError(session, message)
        for manifest in steps.objects:
            created, existing = await self._call(self.api.create, manifest)
            if not created and manifest["kind"] == "Job":
                return job_view(existing)
            untrusted = untrusted_context(manifest, created, existing, session)
            if untrusted is not None:
                # No Job over a context no one approved; removing the object heals it.
                meta = session.metadata
                log.error("Session %s/%s: %s", meta.namespace, meta.name, untrusted)
                raise ContextConflictError(session, untrusted)
        return None

    async def _ensure_network_policy(self, session: Session) -> None:
        """The namespace's runner NetworkPolicy exists and says what it should, before any
        of its runner Jobs: made once per namespace (and again when the watch says it was
        deleted or changed), never per Session. An object of that name that says
        something else stops every runner here until someone deletes it (fail closed)."""
        namespace = session.metadata.namespace
        space = self.state.namespace(namespace)
        if space.network_ready:
            return
        async with space.network_lock:
            if space.network_ready:
                return
            problem = await self._make_network_policy(namespace)
            if problem is not None:
                log.error("Session %s/%s: %s", namespace, session.metadata.name, problem)
                raise IdentityConflictError(session, problem)

    async def _make_network_policy(self, namespace: str) -> str | None:
        """Create the namespace's runner NetworkPolicy, or find it there (409). None when
        it says what it should (the namespace is ready for runners); else why not."""
        planned = network.runner_network_policy(namespace, self.settings)
        created, existing = await self._call(self.api.create, planned)
        if created or network.holds(existing, planned):
            self.state.namespace(namespace).network_ready = True
            return None
        return (
            f"NetworkPolicy {network.RUNNER_NETWORK_POLICY} in {namespace} does not say "
            "what the operator's runner policy says (changed, or made by someone else); "
            "delete it so the operator makes it again and runners can start"
        )

    async def network_policy_event(
        self, kind: str | None, body: Mapping[str, Any], namespace: str | None
    ) -> None:
        """The watch saw the namespace's runner NetworkPolicy: one that matches spares the
        next runner the check; one deleted is made again at once if runners are about
        (else before the next), one changed stops new runners until it is deleted."""
        ns = namespace or ""
        meta = body.get("metadata") or {}
        if meta.get("name") != network.RUNNER_NETWORK_POLICY or not ns:
            return
        if not self.settings.runner_network_policy:
            return
        space = self.state.namespace(ns)
        planned = network.runner_network_policy(ns, self.settings)
        space.network_ready = kind != "DELETED" and network.holds(body, planned)
        if kind != "DELETED" or not space.active_jobs:
            return
        async with space.network_lock:
            if space.network_ready:
                return
            try:
                problem = await self._make_network_policy(ns)
            except Exception as exc:  # the namespace may be going; the next runner retries
                log.warning("runner NetworkPolicy in %s not made again: %s", ns, exc)
                return
        if problem is not None:  # made again meanwhile, by someone else: runners wait
            log.warning("%s", problem)
            return
        log.warning("runner NetworkPolicy in %s was deleted; made it again", ns)

    # --- announcing what was written ------------------------------------------------------

    def _announce(self, session: Session, result: Plan) -> None:
        """Kubernetes Events and audit records for the history entries just written."""
        ref = announce.session_ref(session)
        identity = self.settings.identity
        for entry in result.added:
            event = announce.kube_event(entry)
            if event is not None:
                self.post_event(ref, event.type, event.reason, event.message)
                # The milestones in the log too, under the Session and its delivery's trace id.
                log.log(
                    logging.WARNING if event.type == "Warning" else logging.INFO,
                    "%s: %s",
                    event.reason,
                    event.message,
                )
            self.emit_audit(audit_record(**announce.audit_fields(session, entry, identity)))

    def _warn(self, session: Session, reason: str, message: str) -> None:
        self.post_event(announce.session_ref(session), "Warning", reason, message)

    # --- policies, the resync loop and the usage roll-up ----------------------------------

    def keep_policy(self, body: Mapping[str, Any], deleted: bool = False) -> None:
        error = self.policies.keep(body, deleted)
        if error is not None:
            meta = body.get("metadata") or {}
            log.error(
                "NamespacePolicy %s/%s cannot be read: %s",
                meta.get("namespace"),
                meta.get("name"),
                error,
            )

    async def prime_policies(self) -> None:
        """List the NamespacePolicies once, before any Session is planned."""
        namespaces: list[str | None] = [*self.settings.namespace_list] or [None]
        for namespace in namespaces:
            for body in await self._call(self.api.list_policies, namespace):
                if self.settings.owns((body.get("metadata") or {}).get("namespace") or ""):
                    self.keep_policy(body)  # a shard keeps only its own namespaces' policies

    async def resync(self) -> None:
        """Queue every Session whose deadline passed or whose last reconcile failed, and
        look at the queue of every namespace where the cap refused someone (only they
        wait for a slot: at 10,000 Sessions a look at every namespace, each resync, was
        a walk through every Session)."""
        sessions = self._indexes.get(SESSION_INDEX)
        if sessions is None or self._indexes.get(JOB_INDEX) is None:
            return
        now = self.clock.now().timestamp()
        monotonic = self.clock.monotonic()
        for ident, state in self.state.items():
            due = state.retry_at is None or state.retry_at <= monotonic
            if (state.failed and due) or (state.deadline is not None and state.deadline <= now):
                self._force(ident, PROGRESS)
        for namespace, space in self.state.namespaces():
            if space.refused:
                self.gate.kick(namespace)

    async def roll_up_usage(self, namespace: str, name: str, status: dict[str, Any]) -> None:
        """Month-to-date spend of the namespace's Sessions into the NamespacePolicy status,
        which the admission webhook compares with the monthly budget."""
        month = usage.month_of(self.clock.now())
        # The ledger is read fresh and written back guarded by its resourceVersion: a
        # stale copy must never drop an entry of a Session deleted since (issue 17, 6).
        fresh = next(
            (
                p
                for p in await self._call(self.api.list_policies, namespace)
                if (p.get("metadata") or {}).get("name") == name
            ),
            None,
        )
        version = ""
        if fresh is not None:
            status = dict(fresh.get("status") or {})
            version = str((fresh.get("metadata") or {}).get("resourceVersion") or "")
        sessions = await self._call(self.api.list_sessions_cached, namespace)
        patch = usage.ledger_patch(status, usage.ledger(status, sessions, month), month)
        if patch is not None:
            if version:
                patch["metadata"] = {"resourceVersion": version}
            await self._call(self.api.patch_policy_status, namespace, name, patch)

    async def roll_up_all(self) -> None:
        """Every NamespacePolicy: spend changes as Sessions report usage. Not a kopf timer:
        timers put a finalizer on every NamespacePolicy, which would block namespace
        deletion whenever the operator is down."""
        for known in self.policies:
            await self.roll_up_usage(known.namespace, known.name, known.status)

    def supervise(self, supervisor: Supervisor) -> None:
        """Register the controller's loops: the resync and the usage roll-up."""
        sleep = self.clock.sleep
        supervisor.loop(
            "resync",
            partial(every, self.settings.resync_seconds, self.resync, "resync", sleep=sleep),
        )
        supervisor.loop(
            "usage",
            partial(
                every,
                self.settings.usage_interval_seconds,
                self.roll_up_all,
                "usage roll-up",
                sleep=sleep,
            ),
        )
