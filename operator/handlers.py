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
import logging
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any, cast

import kopf
import pydantic

from ambient.crds.models import GROUP, VERSION, HistoryEntry, Session
from ambient.operator import audit, builders, naming, usage
from ambient.operator.kube import ConflictError, GoneError, Kube
from ambient.operator.observe import JobView, PodView, job_view, newest_pod, pod_view
from ambient.operator.planner import WARNING_EVENTS, Observed, Plan, approver, plan
from ambient.operator.settings import OperatorSettings
from ambient.runners import registry as runner_registry

log = logging.getLogger("ambient.operator")

SETTINGS = OperatorSettings()
REGISTRY = runner_registry.load(SETTINGS.registry_file)
_state: dict[str, Kube] = {}
_tasks: set[asyncio.Task[None]] = set()
_locks: defaultdict[tuple[str, str], asyncio.Lock] = defaultdict(asyncio.Lock)

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
    }
)

# What the last reconcile of each Session saw, to skip events that change nothing the
# planner reads (most Pod and Job updates, and the echo of our own status writes).
_last_seen: dict[tuple[str, str], tuple[str, Any, Any]] = {}
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
SLIM = "_payloadOmitted"


def kube() -> Kube:
    """The API client, made once at start-up."""
    return _state["kube"]


@kopf.on.startup()
async def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    """Tune kopf for many small objects, and make the API client."""
    audit.configure()
    settings.execution.max_workers = SETTINGS.workers
    settings.posting.level = logging.INFO
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.networking.request_timeout = 30
    settings.batching.worker_limit = SETTINGS.workers * 4
    settings.persistence.diffbase_storage = NoDiffBase()
    # asyncio.to_thread runs on the loop's default executor, which has only cpu+4 threads:
    # API calls wait on the network, not the CPU, so size it to the client's connections.
    asyncio.get_running_loop().set_default_executor(
        ThreadPoolExecutor(SETTINGS.workers, thread_name_prefix="kube")
    )
    _state["kube"] = await asyncio.to_thread(Kube, SETTINGS.workers)
    _tasks.add(asyncio.get_running_loop().create_task(_usage_loop()))
    log.info("runner registry has frameworks: %s", ", ".join(sorted(REGISTRY.frameworks)))


def _slim(body: kopf.Body) -> dict[str, Any]:
    """A Session body without its trigger payload: enough to plan, small to keep."""
    spec = dict(body.get("spec", {}))
    trigger = dict(spec.get("trigger", {}))
    slim = bool(trigger.get("payload"))
    trigger["payload"] = {}
    spec["trigger"] = trigger
    metadata = {k: v for k, v in body.metadata.items() if k != "managedFields"}
    return {
        "metadata": metadata,
        "spec": spec,
        "status": dict(body.get("status", {})),
        SLIM: slim,
    }


def _key(namespace: str | None, session: str) -> tuple[str, str]:
    return (namespace or "", naming.session_label_value(session))


@kopf.index(GROUP, VERSION, "sessions")
def session_index(namespace: str | None, name: str, body: kopf.Body, **_: Any) -> dict[Any, Any]:
    """Sessions by key, so that Job and Pod events find their Session without a read."""
    return {_key(namespace, name): _slim(body)}


@kopf.index("batch", "v1", "jobs", labels=SESSION_SELECTOR)
def job_index(
    namespace: str | None, labels: kopf.Labels, body: kopf.Body, **_: Any
) -> dict[Any, Any]:
    """Runner Jobs by Session."""
    return {(namespace, labels[naming.LABEL_SESSION]): job_view(dict(body))}


def _observe(
    namespace: str, key: tuple[str, str], job_name: str, jobs: kopf.Index[Any, Any]
) -> Observed:
    job = next((j for j in jobs.get(key, []) if j.name == job_name), None)
    return Observed(job=job, pod=_pods.get((namespace, job_name)))


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
        return
    await reconcile(namespace or "", name, dict(body), indexes["job_index"])


@kopf.on.event("batch", "v1", "jobs", labels=SESSION_SELECTOR)
async def on_job(namespace: str | None, labels: kopf.Labels, **indexes: Any) -> None:
    """A runner Job changed: reconcile its Session."""
    await _from_child(namespace, labels, indexes)


async def _from_child(namespace: str | None, labels: kopf.Labels, indexes: dict[str, Any]) -> None:
    ns = namespace or ""
    sessions = indexes["session_index"]
    for body in sessions.get((ns, labels.get(naming.LABEL_SESSION, "")), []):
        await reconcile(ns, body["metadata"]["name"], body, indexes["job_index"])


async def reconcile(
    namespace: str,
    name: str,
    body: dict[str, Any],
    jobs: kopf.Index[Any, Any],
) -> None:
    """Plan and act for one Session, serialised per Session within this process."""
    async with _locks[(namespace, name)]:
        try:
            await _reconcile(namespace, name, body, jobs)
        except GoneError:
            return
        except IdentityConflictError as exc:
            _warn(exc.session, "RunnerIdentityConflict", exc.message)


class IdentityConflictError(Exception):
    """A runner identity object exists under the Session's name but is not its own."""

    def __init__(self, session: Session, message: str) -> None:
        super().__init__(message)
        self.session = session
        self.message = message


def _warn(session: Session, reason: str, message: str) -> None:
    ref = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Session",
        "metadata": {
            "name": session.metadata.name,
            "namespace": session.metadata.namespace,
            "uid": session.metadata.uid,
        },
    }
    kopf.event(kopf.Body(cast(kopf.RawBody, ref)), type="Warning", reason=reason, message=message)


async def _reconcile(
    namespace: str,
    name: str,
    body: dict[str, Any],
    jobs: kopf.Index[Any, Any],
) -> None:
    api = kube()
    ident = (namespace, name)
    key = _key(namespace, name)
    job_name = naming.job_name(name, 1)
    body = _freshest(ident, body)
    seen = _observe(namespace, key, job_name, jobs)
    fingerprint = (body["metadata"].get("resourceVersion", ""), seen.job, seen.pod)
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
        observed = Observed(job=override_job or seen.job, pod=override_pod or seen.pod)
        result = plan(session, observed, _runner(session), SETTINGS, datetime.now(UTC))

        confirmed = await _confirm(api, session, observed, job_name)
        if confirmed is not None:
            override_job = confirmed.job or override_job
            override_pod = confirmed.pod or override_pod
            continue

        if result.create:
            if body.get(SLIM):
                body = await asyncio.to_thread(api.get_session, namespace, name)
                continue
            existing = await _create(api, result, session)
            if existing is not None:
                override_job = existing
                continue
        if result.status is None:
            _last_seen[ident] = fingerprint
            return
        status = result.status.model_dump(mode="json", by_alias=True, exclude_none=True)
        sent_rv = session.metadata.resource_version
        try:
            updated = await asyncio.to_thread(
                api.replace_session_status, namespace, name, sent_rv, status
            )
        except ConflictError:
            body = await asyncio.to_thread(api.get_session, namespace, name)
            continue
        _written[ident] = (sent_rv, updated)
        _last_seen[ident] = (updated["metadata"]["resourceVersion"], seen.job, seen.pod)
        _announce(session, result)
        return
    log.warning(
        "Session %s/%s: gave up after %d conflicting attempts", namespace, name, MAX_ATTEMPTS
    )


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


def _pod_outdated(job: JobView, pod: PodView | None) -> bool:
    """Whether the Job's state says more about its pod than the pod last read does."""
    if job.complete or job.failed:
        return pod is None or pod.phase not in ("Succeeded", "Failed")
    if job.ready > 0:
        return pod is None or pod.phase == "Pending"
    return job.active > 0 and pod is None


async def _confirm(
    api: Kube, session: Session, observed: Observed, job_name: str
) -> Observed | None:
    """Read what the watches do not carry, or not yet: a Job this process created before
    the watch delivered it, and the runner pod when the Job's state moved past it.

    Pods are read, not watched: a watch would deliver every pod update of every Session
    to this process, and the Job's counters say when a read is worth it."""
    namespace = session.metadata.namespace
    if observed.job is None and session.status.workload.job_name:
        found = await asyncio.to_thread(api.get_job, namespace, job_name)
        if found is not None:
            return Observed(job=job_view(found))
    job = observed.job
    if job is not None and _pod_outdated(job, observed.pod):
        for consistent in (False, True):
            listed = await asyncio.to_thread(api.list_pods, namespace, job_name, consistent)
            fresh = newest_pod([pod_view(p) for p in listed], job_name)
            if fresh is not None and not _pod_outdated(job, fresh):
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
        created, existing = await asyncio.to_thread(api.create, manifest)
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
async def on_policy(
    event: kopf.RawEvent, namespace: str | None, name: str, status: kopf.Status, **_: Any
) -> None:
    """A NamespacePolicy appeared or changed: bring its spend figure up to date."""
    if event.get("type") != "DELETED":
        await roll_up_usage(namespace or "", name, dict(status))


async def roll_up_usage(namespace: str, name: str, status: dict[str, Any]) -> None:
    """Month-to-date spend of the namespace's Sessions into the NamespacePolicy status,
    which the admission webhook compares with the monthly budget."""
    month = usage.month_of(datetime.now(UTC))
    sessions = await asyncio.to_thread(kube().list_sessions, namespace)
    patch = usage.policy_status_patch(status, usage.month_to_date(sessions, month), month)
    if patch is not None:
        await asyncio.to_thread(kube().patch_policy_status, namespace, name, patch)


async def _usage_loop() -> None:
    """Every interval, every NamespacePolicy: spend changes as Sessions report usage."""
    while True:
        await asyncio.sleep(USAGE_INTERVAL_SECONDS)
        try:
            policies = await asyncio.to_thread(kube().list_policies, SETTINGS.namespace_list)
            for p in policies:
                meta = p["metadata"]
                await roll_up_usage(meta["namespace"], meta["name"], p.get("status") or {})
        except Exception:  # one failed round must not stop the loop
            log.exception("usage roll-up failed; retrying in %ss", USAGE_INTERVAL_SECONDS)


def _owned_by(body: dict[str, Any], session: Session) -> bool:
    refs = (body.get("metadata") or {}).get("ownerReferences") or []
    return any(r.get("uid") == session.metadata.uid for r in refs)


def _announce(session: Session, result: Plan) -> None:
    """Kubernetes Events and audit records for the history entries just written."""
    ref = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Session",
        "metadata": {
            "name": session.metadata.name,
            "namespace": session.metadata.namespace,
            "uid": session.metadata.uid,
        },
    }
    for entry in result.added:
        if entry.event in MILESTONES:
            _event(ref, entry)
        audit.emit(
            audit.record(
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
    return SETTINGS.identity


def _event(ref: dict[str, Any], entry: HistoryEntry) -> None:
    message = ", ".join(f"{k}={v}" for k, v in sorted(entry.data.items()))
    kopf.event(
        kopf.Body(cast(kopf.RawBody, ref)),
        type="Warning" if entry.event in WARNING_EVENTS else "Normal",
        reason=entry.event,
        message=message[:1000] or entry.event,
    )
