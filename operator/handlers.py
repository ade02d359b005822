"""kopf handlers: thin adapters between watch events, the planner and the API.

Level-triggered: every event for a Session or its Job runs the same reconcile, which
reads the latest observed state from kopf's watch-fed indexes (and the runner pod, read
when the Job's counters say it moved), asks the pure planner what to do, and does it.
No handler progress is stored on the objects (kopf's event handlers keep none), so the
only writes are the Job and the Session's status. A status write carries the
resourceVersion it was computed from; on a conflict the Session is re-read and the plan
made again.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import defaultdict
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from functools import partial
from typing import Any, TypeVar, cast

import kopf
import pydantic

from ambient.common.audit import trail as audit
from ambient.common.audit.records import record as audit_record
from ambient.common.kube.client import ConflictError, GoneError, Kube
from ambient.crds import naming
from ambient.crds.models import GROUP, VERSION, HistoryEntry, NamespacePolicy, Session
from ambient.operator import background, usage
from ambient.operator.history.archiver import Archiver
from ambient.operator.history.rules import ArchivePolicy
from ambient.operator.policies import PolicyCache
from ambient.operator.sessions import builders, lifecycle
from ambient.operator.sessions.observe import (
    JobView,
    PodView,
    job_view,
    newest_pod,
    pod_outdated,
    pod_view,
)
from ambient.operator.sessions.planner import WARNING_EVENTS, Observed, Plan, approver, plan
from ambient.operator.settings import OperatorSettings
from ambient.operator.workqueue import PROGRESS, START, WorkQueue
from ambient.runners import registry as runner_registry

log = logging.getLogger("ambient.operator")
T = TypeVar("T")

SETTINGS = OperatorSettings()
REGISTRY = runner_registry.load(SETTINGS.registry_file)
_state: dict[str, Kube] = {}
_tasks: set[asyncio.Task[None]] = set()
_locks: defaultdict[tuple[str, str], asyncio.Lock] = defaultdict(asyncio.Lock)
# Events only mark Sessions dirty; SETTINGS.workers tasks reconcile them, Sessions that
# need their Job first. Memory in flight is bounded by the workers, not by a burst.
_queue: WorkQueue[tuple[str, str]] = WorkQueue()
_workers: list[asyncio.Task[None]] = []
# kopf hands its indexes to handlers only; the workers read them through this reference.
_indexes: dict[str, Any] = {}
# Jobs this process created that the Job watch may not have delivered yet.
_created: dict[tuple[str, str], JobView] = {}
# Payloads up to this size stay in the Session index, so starting a Session needs no read.
INDEXED_PAYLOAD_BYTES = 4096


async def _call(fn: Callable[..., T], *args: Any) -> T:
    """One API call on a worker thread (the pool is sized to the client's connections)."""
    return await asyncio.to_thread(fn, *args)


SESSION_SELECTOR = {naming.LABEL_SESSION: kopf.PRESENT}

# History entries that also become Kubernetes Events. Every entry is in the history and
# the audit log; Events (one API write each) mark what a person watching wants to see.
MILESTONES = frozenset(
    {
        "WorkloadCreated",
        "WorkloadSucceeded",
        "WorkloadFailed",
        "FrameworkUnknown",
        "AwaitingApproval",
        "Approved",
        "WorkloadLost",
        "WorkloadConflict",
        "Cancelled",
        "TimedOut",
        "ApprovalExpired",
        "PolicyViolation",
        "PolicyViolationFlagged",
        "AttemptFailed",
    }
)

# What the last reconcile of each Session saw, to skip events that change nothing the
# planner reads (most Pod and Job updates, and the echo of our own status writes).
_last_seen: dict[tuple[str, str], tuple[Any, ...]] = {}
# The status this process wrote last, keyed by Session, with the resourceVersion it
# replaced: a body still at that version is stale, and the written one is used instead.
_written: dict[tuple[str, str], tuple[str, dict[str, Any]]] = {}
# The runner pod as last read, by (namespace, Job name).
_pods: dict[tuple[str, str], PodView] = {}


class NoDiffBase(kopf.DiffBaseStorage):
    """kopf's change detection deep-copies every object on every event; the operator has
    no change handlers (only event handlers and indexes), so it keeps no diff base."""

    def build(self, *, body: kopf.Body, extra_fields: Any = None) -> kopf.BodyEssence:
        return cast(kopf.BodyEssence, {})

    def fetch(self, *, body: kopf.Body) -> kopf.BodyEssence | None:
        return None

    def store(self, *, body: kopf.Body, patch: kopf.Patch, essence: kopf.BodyEssence) -> None:
        return None


MAX_ATTEMPTS = 8
POSTING_WORKERS = 4
SLIM = "_payloadOmitted"


_archiver: list[Archiver] = []


def kube() -> Kube:
    """The API client, made once at start-up."""
    return _state["kube"]


@kopf.on.startup()
async def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    """Tune kopf for many small objects, and make the API client."""
    audit.configure()
    settings.execution.max_workers = SETTINGS.workers
    settings.posting.level = logging.INFO
    # kopf posts each object's Events from its own worker, by default with no limit, and
    # its HTTP pool has none either: a burst of Sessions opened one TLS connection per
    # Event in flight (dozens, each with its buffers, and a handshake for the API server).
    settings.posting.worker_limit = POSTING_WORKERS
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.networking.request_timeout = 30
    # No limit on kopf's per-object workers: until every index has listed its objects,
    # each worker waits for the others, so a limit below the number of Jobs at start-up
    # deadlocks. The handlers only mark Sessions dirty, so a worker lives briefly.
    settings.queueing.worker_limit = None
    settings.queueing.idle_timeout = 1.0
    settings.persistence.diffbase_storage = NoDiffBase()
    # asyncio.to_thread runs on the loop's default executor, which has only cpu+4 threads:
    # API calls wait on the network, not the CPU, so size it to the client's connections.
    # Two calls per worker: one starting a Session creates its ServiceAccount and Role at
    # once, and neither should wait for a thread behind another worker's call.
    calls = 2 * SETTINGS.workers
    asyncio.get_running_loop().set_default_executor(
        ThreadPoolExecutor(calls, thread_name_prefix="kube")
    )
    _state["kube"] = await asyncio.to_thread(Kube, calls)
    store, prefix = background.store_from_settings()
    _archiver.append(
        Archiver(
            _state["kube"],
            store,
            prefix,
            ArchivePolicy(
                at_entries=SETTINGS.history_archive_at_entries,
                batch=SETTINGS.history_archive_batch,
                at_bytes=SETTINGS.history_archive_at_bytes,
            ),
            SETTINGS.identity,
        )
    )
    await _prime_policies(_state["kube"])
    await background.start(_state["kube"], SETTINGS, POLICIES.policy)
    _tasks.add(asyncio.create_task(_resync_loop(), name="ambient-resync"))
    _tasks.add(asyncio.get_running_loop().create_task(_usage_loop()))
    log.info("runner registry has frameworks: %s", ", ".join(sorted(REGISTRY.frameworks)))


@kopf.on.cleanup()
async def shutdown(**_: Any) -> None:
    """Stop the workers and the periodic loops; buffered audit records go out first."""
    for task in _workers:
        task.cancel()
    await asyncio.gather(*_workers, return_exceptions=True)
    _workers.clear()
    await background.stop()


def _slim(body: Mapping[str, Any]) -> dict[str, Any]:
    """A Session body without managed fields, and without its trigger payload when that
    is large: enough to plan, small to keep for every Session."""
    spec = dict(body.get("spec", {}))
    trigger = dict(spec.get("trigger", {}))
    payload = trigger.get("payload")
    slim = bool(payload) and len(json.dumps(payload)) > INDEXED_PAYLOAD_BYTES
    if slim:
        trigger["payload"] = {}
    spec["trigger"] = trigger
    metadata = {k: v for k, v in body.get("metadata", {}).items() if k != "managedFields"}
    return {
        "metadata": metadata,
        "spec": spec,
        "status": dict(body.get("status", {})),
        SLIM: slim,
    }


def _key(namespace: str | None, session: str) -> tuple[str, str]:
    return (namespace or "", naming.session_label_value(session))


# The indexers are coroutines although they never wait: kopf runs plain functions on its
# thread pool, a hand-off (and a context copy) per watch event for a dict lookup's work.


@kopf.index(GROUP, VERSION, "sessions")
async def session_index(
    namespace: str | None, name: str, body: kopf.Body, **_: Any
) -> dict[Any, Any]:
    """Sessions by key, so that Job and Pod events find their Session without a read."""
    return {_key(namespace, name): _slim(body)}


@kopf.index("batch", "v1", "jobs", labels=SESSION_SELECTOR)
async def job_index(
    namespace: str | None, labels: kopf.Labels, body: kopf.Body, **_: Any
) -> dict[Any, Any]:
    """Runner Jobs by Session."""
    return {(namespace, labels[naming.LABEL_SESSION]): job_view(dict(body))}


def _observe(
    ident: tuple[str, str], key: tuple[str, str], job_name: str, jobs: kopf.Index[Any, Any]
) -> Observed:
    mine: list[JobView] = list(jobs.get(key, []))
    job = next((j for j in mine if j.name == job_name), None)
    if job is None:
        created = _created.get(ident)
        job = created if created is not None and created.name == job_name else None
    else:
        _created.pop(ident, None)  # the watch has caught up
    others = tuple(j for j in mine if j.name != job_name)
    return Observed(job=job, pod=_pods.get((ident[0], job_name)), others=others)


# Indexes arrive as keyword arguments named after their functions; they are read from
# **indexes because kopf's handler protocol does not list them.


@kopf.on.event(GROUP, VERSION, "sessions")
async def on_session(
    event: kopf.RawEvent, body: kopf.Body, namespace: str | None, name: str, **indexes: Any
) -> None:
    """Any change to a Session (including the initial listing after a restart)."""
    if event.get("type") == "DELETED":
        key = (namespace or "", name)
        _locks.pop(key, None)
        _last_seen.pop(key, None)
        _written.pop(key, None)
        _pods.pop((key[0], naming.job_name(name, 1)), None)
        _created.pop(key, None)
        _queue.discard(key)
        background.observe_session(key[0], name, None)
        _deadlines.pop(key, None)
        _failed.discard(key)
        _forced.discard(key)
        _names[key[0]].discard(name)
        _refused[key[0]].discard(name)
        _recorded.pop(key, None)
        return
    _start_workers(indexes)
    ident = (namespace or "", name)
    _names[ident[0]].add(name)
    if (body.get("status") or {}).get("phase") in ("Completed", "Failed"):
        _refused[ident[0]].discard(name)
    written = _written.get(ident)
    if written is not None and body.get("metadata", {}).get("resourceVersion") != written[0]:
        _written.pop(ident, None)  # the watch caught up with (or passed) our write
    background.observe_session(ident[0], name, body)
    _queue.add(ident, START if _needs_start(ident, body, indexes["job_index"]) else PROGRESS)
    outbox = background.outbox()
    if outbox is not None:
        await outbox.session_changed(body)


@kopf.on.event("batch", "v1", "jobs", labels=SESSION_SELECTOR)
async def on_job(
    event: kopf.RawEvent,
    body: kopf.Body,
    namespace: str | None,
    labels: kopf.Labels,
    **indexes: Any,
) -> None:
    """A runner Job changed: reconcile its Session; one that finished or went frees a slot,
    so wake the queue."""
    _indexes.update(indexes)
    await _from_child(namespace, labels, indexes)
    ns, name = namespace or "", body.get("metadata", {}).get("name", "")
    if event.get("type") != "DELETED" and lifecycle.job_active(job_view(dict(body))):
        _active_jobs[ns].add(name)
    else:
        _active_jobs[ns].discard(name)
        if _refused[ns]:
            _kick(ns)


async def _from_child(namespace: str | None, labels: kopf.Labels, indexes: dict[str, Any]) -> None:
    ns = namespace or ""
    _start_workers(indexes)
    sessions = indexes["session_index"]
    for body in sessions.get((ns, labels.get(naming.LABEL_SESSION, "")), []):
        _progress((ns, body["metadata"]["name"]))


def _needs_start(ident: tuple[str, str], body: kopf.Body, jobs: kopf.Index[Any, Any]) -> bool:
    """A live Session with no Job yet: creating it is the most urgent work there is."""
    if body.get("status", {}).get("phase") in ("Completed", "Failed") or ident in _created:
        return False
    return not jobs.get(_key(*ident))


# A Session's status is written for its Job's progress at most this often: the states a
# quick Job passes through meanwhile (created, running) are recorded with the next one.
# Each write of a Session costs the API server more than creating its Job; in a burst
# this saves about one per Session. Changes to the Session itself are not delayed.
PROGRESS_INTERVAL_SECONDS = 1.0
# When each Session's status was last written (or its Job created), and which are waiting
# for the interval to pass.
_recorded: dict[tuple[str, str], float] = {}
_deferred: set[tuple[str, str]] = set()


def _progress(ident: tuple[str, str]) -> None:
    """Mark a Session dirty for its Job's progress, once the interval since its last
    status write has passed."""
    last = _recorded.get(ident)
    wait = 0.0 if last is None else last + PROGRESS_INTERVAL_SECONDS - time.monotonic()
    if wait <= 0:
        _queue.add(ident, PROGRESS)
    elif ident not in _deferred:
        _deferred.add(ident)
        asyncio.get_running_loop().call_later(wait, _undefer, ident)


def _undefer(ident: tuple[str, str]) -> None:
    _deferred.discard(ident)
    _queue.add(ident, PROGRESS)


def _start_workers(indexes: dict[str, Any]) -> None:
    """Start the reconcile workers from the first handler call: tasks copy the context
    they are made in, and kopf.event() needs a handler's context to post Events."""
    if _workers:
        return
    _indexes.update(indexes)
    _workers.extend(
        asyncio.create_task(_work(), name=f"reconcile-{i}") for i in range(SETTINGS.workers)
    )


async def _work() -> None:
    """One reconcile worker: take a dirty Session, reconcile it, repeat. A reconcile that
    fails is remembered by ``reconcile`` and run again by the resync loop."""
    while True:
        ident, priority = await _queue.get()
        try:
            force = ident in _forced
            _forced.discard(ident)
            body = _indexed(ident)
            if body is not None:
                await reconcile(
                    ident[0],
                    ident[1],
                    body,
                    _indexes["job_index"],
                    start=priority == START,
                    force=force,
                )
        finally:
            _queue.done(ident)


def _indexed(ident: tuple[str, str]) -> dict[str, Any] | None:
    """The Session's body as the index holds it, or None once it is gone."""
    sessions = _indexes.get("session_index")
    if sessions is None:
        return None
    for body in sessions.get(_key(*ident), []):
        if body["metadata"]["name"] == ident[1]:
            return cast(dict[str, Any], body)
    return None


async def reconcile(
    namespace: str,
    name: str,
    body: dict[str, Any],
    jobs: kopf.Index[Any, Any],
    *,
    start: bool = False,
    force: bool = False,
) -> None:
    """Plan and act for one Session, serialised per Session within this process.

    With ``start``, only the Session's objects are created: recording that in its status
    is queued as progress, behind the other Sessions still waiting for their Job. kopf
    does not retry event handlers, so a failed reconcile is remembered and the resync loop
    runs it again; ``force`` skips the check for an unchanged observation."""
    ident = (namespace, name)
    async with _locks[ident]:
        try:
            if force:
                _last_seen.pop(ident, None)
            await _reconcile(namespace, name, body, jobs, start)
            _failed.discard(ident)
        except GoneError:
            return
        except IdentityConflictError as exc:
            _warn(exc.session, "RunnerIdentityConflict", exc.message)
        except Exception:
            _failed.add(ident)
            log.exception("Session %s/%s: reconcile failed; retried by the resync loop", *ident)


class IdentityConflictError(Exception):
    """A runner identity object exists under the Session's name but is not its own."""

    def __init__(self, session: Session, message: str) -> None:
        super().__init__(message)
        self.session = session
        self.message = message


def _session_ref(session: Session) -> dict[str, Any]:
    """What a Kubernetes Event needs to name the Session it is about."""
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Session",
        "metadata": {
            "name": session.metadata.name,
            "namespace": session.metadata.namespace,
            "uid": session.metadata.uid,
        },
    }


def _warn(session: Session, reason: str, message: str) -> None:
    ref = _session_ref(session)
    kopf.event(kopf.Body(cast(kopf.RawBody, ref)), type="Warning", reason=reason, message=message)


async def _reconcile(
    namespace: str,
    name: str,
    body: dict[str, Any],
    jobs: kopf.Index[Any, Any],
    start: bool,
) -> None:
    api = kube()
    ident = (namespace, name)
    key = _key(namespace, name)
    body = _freshest(ident, body)
    job_name = naming.job_name(name, (body.get("status") or {}).get("attempt") or 1)
    seen = _observe(ident, key, job_name, jobs)
    fingerprint = (body["metadata"].get("resourceVersion", ""), seen.job, seen.pod, seen.others)
    if _last_seen.get(ident) == fingerprint:
        return
    override_job: JobView | None = None
    override_pod: PodView | None = None
    for _attempt in range(MAX_ATTEMPTS):
        try:
            session = Session.model_validate(body)
        except pydantic.ValidationError as exc:
            log.error("Session %s/%s cannot be read: %s", namespace, name, exc)
            return
        if naming.job_name(name, session.status.attempt or 1) != job_name:
            # A re-read body moved to another attempt: start over from it.
            return await _reconcile(namespace, name, body, jobs, start)
        if (archived := await _archive_first(api, ident, session)) is not None:
            body = archived
            continue
        observed = Observed(
            job=override_job or seen.job, pod=override_pod or seen.pod, others=seen.others
        )
        now = datetime.now(UTC)
        runner = _runner(session)
        ctx = _context(session, now)
        result = plan(session, observed, runner, SETTINGS, now, context=ctx)
        _remember_deadline(ident, session, result, ctx, runner)

        confirmed = await _confirm(api, session, observed, job_name)
        if confirmed is not None:
            override_job = confirmed.job or override_job
            override_pod = confirmed.pod or override_pod
            continue

        if result.create:
            if body.get(SLIM):
                body = await _call(api.get_session, namespace, name)
                continue
            replan = partial(plan, session, observed, runner, SETTINGS, now)
            result, existing = await _start(
                api,
                result,
                session=session,
                namespace=namespace,
                body=body,
                job_name=job_name,
                ctx=ctx,
                jobs=jobs,
                replan=replan,
            )
            if existing is not None:
                override_job = existing
                continue
            if _job_created(ident, result, start):
                return
        if result.status is None:
            await _delete(api, namespace, result.delete)
            _last_seen[ident] = fingerprint
            return
        if not await _write(api, ident, session, result, seen):
            body = await _call(api.get_session, namespace, name)
            continue
        return
    log.warning(
        "Session %s/%s: gave up after %d conflicting attempts", namespace, name, MAX_ATTEMPTS
    )


def _job_created(ident: tuple[str, str], result: Plan, start: bool) -> bool:
    """Remember the Job this pass created (the gate may have queued the Session instead).
    True when its status write is left to the progress pass, behind Sessions still
    waiting for their Job."""
    job = next((m for m in result.create if m["kind"] == "Job"), None)
    if job is None:
        return False
    _created[ident] = job_view(job)
    if not start:
        return False
    _recorded[ident] = time.monotonic()
    _progress(ident)
    return True


async def _archive_first(
    api: Kube, ident: tuple[str, str], session: Session
) -> dict[str, Any] | None:
    """Archive the oldest history entries when due, before planning, so the window has
    room for what the plan appends. Returns the body to plan from next, or None when
    nothing was due."""
    step = _archiver[0].due(session) if _archiver else None
    if step is None:
        return None
    updated = await _archiver[0].archive(session, step)
    if updated is None:
        return await _call(api.get_session, *ident)
    _written[ident] = (session.metadata.resource_version, _slim(updated))
    return _slim(updated)


async def _write(
    api: Kube, ident: tuple[str, str], session: Session, result: Plan, seen: Observed
) -> bool:
    """Write the planned status (guarded by resourceVersion); False on a conflict."""
    assert result.status is not None
    status = result.status.model_dump(mode="json", by_alias=True, exclude_none=True)
    sent_rv = session.metadata.resource_version
    try:
        updated = await _call(api.replace_session_status, *ident, sent_rv, status)
    except ConflictError:
        return False
    _written[ident] = (sent_rv, _slim(updated))
    _recorded[ident] = time.monotonic()
    _last_seen[ident] = (updated["metadata"]["resourceVersion"], seen.job, seen.pod, seen.others)
    _announce(session, result)
    await _delete(api, ident[0], result.delete)
    return True


def _freshest(ident: tuple[str, str], body: dict[str, Any]) -> dict[str, Any]:
    """The body from the watch, or the one this process wrote if the watch lags behind."""
    written = _written.get(ident)
    if written is None:
        return body
    if body["metadata"].get("resourceVersion") == written[0]:
        return written[1]
    _written.pop(ident, None)
    return body


def _runner(
    session: Session,
) -> runner_registry.ResolvedRunner | runner_registry.UnknownFrameworkError:
    framework = session.spec.framework
    try:
        return runner_registry.resolve(
            REGISTRY, framework.type, framework.version, SETTINGS.image_registry
        )
    except runner_registry.UnknownFrameworkError as exc:
        return exc


async def _confirm(
    api: Kube, session: Session, observed: Observed, job_name: str
) -> Observed | None:
    """Read what the watches do not carry, or not yet: a Job this process created before
    the watch delivered it, and the runner pod when the Job's state moved past it.

    Pods are read, not watched: a watch would deliver every pod update of every Session
    to this process, and the Job's counters say when a read is worth it."""
    namespace = session.metadata.namespace
    if observed.job is None and session.status.workload.job_name:
        found = await _call(api.get_job, namespace, job_name)
        if found is not None:
            return Observed(job=job_view(found))
    job = observed.job
    if job is not None and pod_outdated(job, observed.pod):
        for consistent in (False, True):
            listed = await _call(api.list_pods, namespace, job_name, consistent)
            fresh = newest_pod([pod_view(p) for p in listed], job_name)
            if fresh is not None and not pod_outdated(job, fresh):
                break
        if fresh is not None and fresh != observed.pod:
            _pods[(namespace, job_name)] = fresh
            return Observed(pod=fresh)
    return None


async def _create(api: Kube, result: Plan, session: Session | None = None) -> JobView | None:
    """Create the planned objects; return the Job that already existed, if one did.

    Before a Job, the Session's runner identity: ServiceAccount and Role at once, then the
    RoleBinding (the API server checks a binding against its Role, unless the creator
    may ``bind``, so the Role must exist first)."""
    manifests = list(result.create)
    if session is not None and any(m["kind"] == "Job" for m in manifests):
        sa, role, binding = builders.runner_identity(session)
        first = await asyncio.gather(*(asyncio.to_thread(api.create, m) for m in (sa, role)))
        for manifest, (created, existing) in zip((sa, role), first, strict=True):
            _check_owned(manifest, created, existing, session)
        _check_owned(binding, *await asyncio.to_thread(api.create, binding), session)
    for manifest in manifests:
        created, existing = await _call(api.create, manifest)
        if not created and manifest["kind"] == "Job":
            return job_view(existing)
    return None


def _check_owned(
    manifest: dict[str, Any], created: bool, existing: dict[str, Any], session: Session
) -> None:
    """Someone else's object under our deterministic name: no Job is created and no status
    written, so a runner never runs under an identity the Session does not own. Every
    later event retries, so removing the object heals it."""
    if created or _owned_by(existing, session):
        return
    message = (
        f"{manifest['kind']} {manifest['metadata']['name']} exists and is not owned "
        "by this Session; delete or rename it so the runner can be created"
    )
    log.error("Session %s/%s: %s", session.metadata.namespace, session.metadata.name, message)
    raise IdentityConflictError(session, message)


# Usage roll-up. Not a kopf timer: timers put a finalizer on every NamespacePolicy, which
# would block namespace deletion whenever the operator is down.
USAGE_INTERVAL_SECONDS = 60


@kopf.on.event(GROUP, VERSION, "namespacepolicies")
async def on_policy_usage(
    event: kopf.RawEvent, namespace: str | None, name: str, status: kopf.Status, **_: Any
) -> None:
    """A NamespacePolicy appeared or changed: bring its spend figure up to date."""
    if event.get("type") != "DELETED":
        await roll_up_usage(namespace or "", name, dict(status))


async def roll_up_usage(namespace: str, name: str, status: dict[str, Any]) -> None:
    """Month-to-date spend of the namespace's Sessions into the NamespacePolicy status,
    which the admission webhook compares with the monthly budget."""
    month = usage.month_of(datetime.now(UTC))
    sessions = await asyncio.to_thread(kube().list_sessions_cached, namespace)
    patch = usage.policy_status_patch(status, usage.month_to_date(sessions, month), month)
    if patch is not None:
        await asyncio.to_thread(kube().patch_policy_status, namespace, name, patch)


async def _usage_loop() -> None:
    """Every interval, every NamespacePolicy: spend changes as Sessions report usage."""
    while True:
        await asyncio.sleep(USAGE_INTERVAL_SECONDS)
        try:
            for known in POLICIES:
                await roll_up_usage(known.namespace, known.name, known.status)
        except Exception:  # one failed round must not stop the loop
            log.exception("usage roll-up failed; retrying in %ss", USAGE_INTERVAL_SECONDS)


def _owned_by(body: dict[str, Any], session: Session) -> bool:
    refs = (body.get("metadata") or {}).get("ownerReferences") or []
    return any(r.get("uid") == session.metadata.uid for r in refs)


def _announce(session: Session, result: Plan) -> None:
    """Kubernetes Events and audit records for the history entries just written."""
    ref = _session_ref(session)
    for entry in result.added:
        if entry.event in MILESTONES:
            _event(ref, entry)
        audit.emit(
            audit_record(
                namespace=session.metadata.namespace,
                session_id=session.metadata.uid,
                actor=_actor(session, entry),
                action=entry.event,
                resource=f"sessions/{session.metadata.name}",
                outcome="failure" if entry.event in WARNING_EVENTS else "success",
                details=dict(entry.data),
                trace_id=session.spec.trigger.delivery_id or session.metadata.uid,
            )
        )


def _actor(session: Session, entry: HistoryEntry) -> str:
    if entry.event == "Approved":
        return approver(session) or SETTINGS.identity
    if entry.event == "Cancelled":
        return entry.data.get("cancelledBy", SETTINGS.identity)
    return SETTINGS.identity


def _event(ref: dict[str, Any], entry: HistoryEntry) -> None:
    message = ", ".join(f"{k}={v}" for k, v in sorted(entry.data.items()))
    kopf.event(
        kopf.Body(cast(kopf.RawBody, ref)),
        type="Warning" if entry.event in WARNING_EVENTS else "Normal",
        reason=entry.event,
        message=message[:1000] or entry.event,
    )


# --- lifecycle: the policy index, the concurrency cap, deadlines and the resync loop -------

# Per namespace: admission decisions run one at a time, so two creates never both take the
# last slot. Jobs created but not yet seen by the watch count against the cap: job name ->
# (Session name, monotonic time of the create).
_ns_locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
_inflight: defaultdict[str, dict[str, tuple[str, float]]] = defaultdict(dict)
INFLIGHT_SECONDS = 120.0
# When each Session must be re-planned even without an event (epoch seconds), and which
# Sessions' last reconcile failed: both drained by the resync loop.
_deadlines: dict[tuple[str, str], float] = {}
_failed: set[tuple[str, str]] = set()
# Namespaces whose queue is to be looked at (see _kick), and Sessions queued for a plan
# that must not be skipped as unchanged: a slot may have opened without any event of theirs.
_kicks: set[str] = set()
_forced: set[tuple[str, str]] = set()
# Per namespace, counted as the watches go (so that the common case costs no scan of
# every Session and Job): the Sessions seen, the runner Jobs unfinished, and the Sessions
# the cap refused (a Job finishing wakes the queue only when someone waits in it).
_names: defaultdict[str, set[str]] = defaultdict(set)
_active_jobs: defaultdict[str, set[str]] = defaultdict(set)
_refused: defaultdict[str, set[str]] = defaultdict(set)
KICK_DELAY_SECONDS = 0.05
# What admitted Sessions last saw of each namespace's policy (see policy_signature).
_policy_seen: dict[str, tuple[int, bool] | None] = {}


# NamespacePolicies, listed once before any Session is planned (so a restart never admits
# under a default cap), then kept by the watch. The one copy the lifecycle, notifications
# and the usage roll-up read.
POLICIES = PolicyCache()


def _keep_policy(body: Mapping[str, Any], deleted: bool = False) -> None:
    error = POLICIES.keep(body, deleted)
    if error is not None:
        meta = body.get("metadata") or {}
        log.error(
            "NamespacePolicy %s/%s cannot be read: %s",
            meta.get("namespace"),
            meta.get("name"),
            error,
        )


async def _prime_policies(api: Kube) -> None:
    namespaces: list[str | None] = [*SETTINGS.namespace_list] or [None]
    for namespace in namespaces:
        for body in await asyncio.to_thread(api.list_policies, namespace):
            _keep_policy(body)


@kopf.on.event(GROUP, VERSION, "namespacepolicies")
async def on_policy(
    event: kopf.RawEvent, body: kopf.Body, namespace: str | None, **indexes: Any
) -> None:
    """A NamespacePolicy changed: re-plan the namespace's unfinished Sessions against it
    (timeouts, compliance), and admit queued ones if the cap grew."""
    _indexes.update(indexes)
    _keep_policy(body, deleted=event.get("type") == "DELETED")
    ns = namespace or ""
    signature = lifecycle.policy_signature(_policy(ns), datetime.now(UTC))
    if _policy_seen.get(ns, ()) == signature:
        return
    _policy_seen[ns] = signature
    for item in _namespace_sessions(ns, indexes["session_index"]):
        if (item.get("status") or {}).get("phase") not in ("Completed", "Failed"):
            await reconcile(ns, item["metadata"]["name"], item, indexes["job_index"], force=True)
    _kick(ns)


def _policy(namespace: str) -> NamespacePolicy | None:
    return POLICIES.policy(namespace)


def _cap(namespace: str) -> int:
    policy = _policy(namespace)
    if policy is None:
        return SETTINGS.default_max_concurrent_sessions
    return policy.spec.max_concurrent_sessions


def _context(session: Session, now: datetime) -> lifecycle.Context:
    policy = _policy(session.metadata.namespace)
    if policy is None:
        return lifecycle.Context(cap=SETTINGS.default_max_concurrent_sessions)
    found: tuple[Any, ...] = ()
    if session.status.phase.value not in ("Completed", "Failed"):
        found = lifecycle.violations(policy, session, REGISTRY, SETTINGS.identity, now)
    return lifecycle.Context(
        lifecycle=policy.spec.lifecycle,
        cap=policy.spec.max_concurrent_sessions,
        violations=found,
        policy_generation=policy.metadata.generation,
        has_policy=True,
    )


def _queued_context(
    ctx: lifecycle.Context, admission: lifecycle.Admission, namespace: str
) -> lifecycle.Context:
    return lifecycle.Context(
        lifecycle=ctx.lifecycle,
        admitted=False,
        queue_position=admission.position,
        queue_length=admission.waiting,
        cap=_cap(namespace),
        violations=ctx.violations,
        policy_generation=ctx.policy_generation,
        has_policy=ctx.has_policy,
    )


def _namespace_sessions(namespace: str, sessions: Any) -> list[dict[str, Any]]:
    return [b for key, bodies in sessions.items() if key[0] == namespace for b in bodies]


def _occupancy(namespace: str, jobs: Any) -> tuple[set[str], set[str]]:
    """Unfinished runner Jobs in the namespace (from the index, plus creates the watch has
    not shown yet) and the Sessions that own them."""
    active: set[str] = set()
    busy: set[str] = set()
    indexed: set[str] = set()
    for key, views in jobs.items():
        if key[0] != namespace:
            continue
        for view in views:
            indexed.add(view.name)
            if lifecycle.job_active(view):
                active.add(view.name)
                busy.add(key[1])
    inflight = _inflight[namespace]
    horizon = time.monotonic() - INFLIGHT_SECONDS
    for job, (session, since) in list(inflight.items()):
        if job in indexed or since < horizon:
            del inflight[job]
            continue
        active.add(job)
        busy.add(naming.session_label_value(session))
    return active, busy


def _waiting(namespace: str, busy: set[str], jobs: Any) -> list[tuple[str, str]]:
    """Sessions that want a Job: none running and none (even finished) for their current
    attempt, which would mean only the status write is still to come."""
    sessions = _indexes.get("session_index", {})
    found = []
    for body in _namespace_sessions(namespace, sessions):
        name = body["metadata"]["name"]
        label = naming.session_label_value(name)
        if label in busy or not lifecycle.wants_job(body):
            continue
        current = naming.job_name(name, (body.get("status") or {}).get("attempt") or 1)
        if any(j.name == current for j in jobs.get((namespace, label), [])):
            continue
        found.append(lifecycle.fifo_key(body))
    return found


async def _admit(
    namespace: str, body: dict[str, Any], job_name: str, jobs: Any
) -> lifecycle.Admission:
    """The concurrency cap: one decision at a time per namespace, counted from the Job
    index and the creates in flight, never from Session status."""
    async with _ns_locks[namespace]:
        occupied = len(_active_jobs[namespace]) + len(_inflight[namespace])
        if occupied + len(_names[namespace]) <= _cap(namespace):
            # More free slots than Sessions in the namespace (counting generously: a Job
            # both in flight and seen counts twice): whatever their order, this one is
            # admitted, without scanning every Session and Job (once per admission, that
            # is quadratic in a burst).
            _inflight[namespace][job_name] = (body["metadata"]["name"], time.monotonic())
            return lifecycle.Admission(True)
        active, busy = _occupancy(namespace, jobs)
        waiting = _waiting(namespace, busy, jobs)
        admission = lifecycle.admit(lifecycle.fifo_key(body), waiting, len(active), _cap(namespace))
        if admission.admitted:
            _inflight[namespace][job_name] = (body["metadata"]["name"], time.monotonic())
        return admission


def _release(namespace: str, job_name: str) -> None:
    _inflight[namespace].pop(job_name, None)


def _kick(namespace: str) -> None:
    """Wake the queued Sessions that free slots would admit, soon: the events of a burst
    (many Jobs finishing at once) share one look at the namespace."""
    if namespace in _kicks:
        return
    _kicks.add(namespace)
    asyncio.get_running_loop().call_later(KICK_DELAY_SECONDS, _wake, namespace)


def _wake(namespace: str) -> None:
    """Queue the heads of the namespace's queue for a fresh plan. Through the work queue,
    so the reconciles stay bounded by the workers, and a Session being reconciled right
    now is planned again when its worker is done (its slot may have opened meanwhile)."""
    _kicks.discard(namespace)
    jobs = _indexes.get("job_index")
    if jobs is None:
        return
    active, busy = _occupancy(namespace, jobs)
    for key in lifecycle.heads(_waiting(namespace, busy, jobs), len(active), _cap(namespace)):
        ident = (namespace, key[1])
        _forced.add(ident)
        _queue.add(ident, START)


async def _delete(api: Kube, namespace: str, names: list[str]) -> None:
    for name in names:
        await asyncio.to_thread(api.delete_job, namespace, name)


def _remember_deadline(
    ident: tuple[str, str],
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
    if deadline is None:
        _deadlines.pop(ident, None)
    else:
        _deadlines[ident] = deadline.timestamp()


async def _resync_loop() -> None:
    """One loop for every Session: deadlines, failed reconciles and the queue."""
    while True:
        await asyncio.sleep(SETTINGS.resync_seconds)
        try:
            await _resync()
        except Exception:
            log.exception("resync failed; trying again in %ss", SETTINGS.resync_seconds)


async def _resync() -> None:
    sessions = _indexes.get("session_index")
    jobs = _indexes.get("job_index")
    if sessions is None or jobs is None:
        return
    now = time.time()
    due = {k for k, t in _deadlines.items() if t <= now} | set(_failed)
    for namespace, name in due:
        for body in sessions.get(_key(namespace, name), []):
            if body["metadata"]["name"] == name:
                await reconcile(namespace, name, body, jobs, force=True)
    for namespace in {key[0] for key in sessions}:
        _kick(namespace)


async def _start(
    api: Kube,
    result: Plan,
    *,
    namespace: str,
    body: dict[str, Any],
    job_name: str,
    ctx: lifecycle.Context,
    jobs: Any,
    replan: Callable[..., Plan],
    session: Session,
) -> tuple[Plan, JobView | None]:
    """Create the planned Job if the cap admits it; else the plan that queues the Session."""
    admission = await _admit(namespace, body, job_name, jobs)
    if not admission.admitted:
        _refused[namespace].add(session.metadata.name)
        return replan(context=_queued_context(ctx, admission, namespace)), None
    _refused[namespace].discard(session.metadata.name)
    try:
        existing = await _create(api, result, session)
    except Exception:
        _release(namespace, job_name)
        raise
    return result, existing
