"""kopf's side of the operator: watches, indexes, start-up and clean-up, nothing else.

Each handler hands its event to the one ``Controller`` (``controller.py``), made at
start-up by ``wiring.assemble`` with everything it needs; the loops beside it run under
one ``Supervisor``. This module is the only one (with the entry point) that imports kopf,
and the only one with module-level state: the objects kopf's handlers reach.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any, cast

import kopf

from ambient.common.audit import trail as audit
from ambient.common.kube import config as kube_config
from ambient.common.kube.client import Kube
from ambient.crds import naming
from ambient.crds.models import GROUP, VERSION
from ambient.operator import filing, wiring
from ambient.operator.controller import Controller, index_key
from ambient.operator.sessions.observe import job_view
from ambient.operator.settings import OperatorSettings
from ambient.operator.supervisor import Supervisor
from ambient.runners import registry as runner_registry

log = logging.getLogger("ambient.operator")

SESSION_SELECTOR = {naming.LABEL_SESSION: kopf.PRESENT}

# What main() gives (the settings, the runner registry), then what start-up makes (the
# controller, the supervisor); kopf's handlers reach them here.
_given: dict[str, Any] = {}
_running: dict[str, Any] = {}


def install(settings: OperatorSettings, registry: runner_registry.Registry) -> None:
    """Give the operator its settings and runner registry (before ``kopf.run``)."""
    _given.update(settings=settings, registry=registry)


def controller() -> Controller:
    return cast(Controller, _running["controller"])


class NoDiffBase(kopf.DiffBaseStorage):
    """kopf's change detection deep-copies every object on every event; the operator has
    no change handlers (only event handlers and indexes), so it keeps no diff base."""

    def build(self, *, body: kopf.Body, extra_fields: Any = None) -> kopf.BodyEssence:
        return cast(kopf.BodyEssence, {})

    def fetch(self, *, body: kopf.Body) -> kopf.BodyEssence | None:
        return None

    def store(self, *, body: kopf.Body, patch: kopf.Patch, essence: kopf.BodyEssence) -> None:
        return None


def _owned(namespace: str | None, **_: Any) -> bool:
    """kopf's filter on every handler and index: a sharded operator neither reconciles nor
    keeps in memory what lives in namespaces another shard owns (operator/sharding.py)."""
    settings: OperatorSettings | None = _given.get("settings")
    return settings is None or settings.owns(namespace or "")


def post_event(ref: dict[str, Any], type_: str, reason: str, message: str) -> None:
    """A Kubernetes Event, posted by kopf's own poster (from a handler's context)."""
    kopf.event(kopf.Body(cast(kopf.RawBody, ref)), type=type_, reason=reason, message=message)


@kopf.on.login()
def login(**_: Any) -> kopf.ConnectionInfo:
    """kopf's watches log in as the operator's own client does (``common/kube/config``):
    without this, kopf logs in through the official client's loader, whose import alone
    holds about 40 MiB. Called again by kopf when the API server answers 401."""
    return kopf.ConnectionInfo(**kube_config.connection_fields(kube_config.configuration()))


# The first lists may meet a 429 ("storage is (re)initializing") right after the CRDs are
# installed, as with the chart; kopf's default backoff would idle the operator for 60 s.
STARTUP_BACKOFF_SECONDS = 3.0


@kopf.on.startup(backoff=STARTUP_BACKOFF_SECONDS)
async def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    """Tune kopf for many small objects, make the API client and the controller, and start
    the loops."""
    ours: OperatorSettings = _given.get("settings") or OperatorSettings()
    registry = _given.get("registry") or runner_registry.load(ours.registry_file)
    audit.configure()
    settings.execution.max_workers = ours.workers
    settings.posting.level = logging.INFO
    # kopf posts each object's Events from its own worker, by default with no limit, and
    # its HTTP pool has none either: a burst of Sessions opened one TLS connection per
    # Event in flight (dozens, each with its buffers, and a handshake for the API server).
    settings.posting.worker_limit = ours.event_posting_workers
    settings.watching.server_timeout = ours.watch_server_timeout_seconds
    settings.watching.client_timeout = ours.watch_client_timeout_seconds
    settings.networking.request_timeout = ours.request_timeout_seconds
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
    calls = 2 * ours.workers
    asyncio.get_running_loop().set_default_executor(
        ThreadPoolExecutor(calls, thread_name_prefix="kube")
    )
    api = await asyncio.to_thread(Kube, calls)
    made, supervisor = await wiring.assemble(api, ours, registry, post_event)
    _running.update(controller=made, supervisor=supervisor)
    await supervisor.start()
    log.info("runner registry has frameworks: %s", ", ".join(sorted(registry.frameworks)))


@kopf.on.cleanup()
async def shutdown(**_: Any) -> None:
    """Stop the workers and every loop; buffered audit records go out first."""
    made: Controller | None = _running.pop("controller", None)
    supervisor: Supervisor | None = _running.pop("supervisor", None)
    if made is not None:
        await made.stop()
    if supervisor is not None:
        await supervisor.stop()


# The indexers are coroutines although they never wait: kopf runs plain functions on its
# thread pool, a hand-off (and a context copy) per watch event for a dict lookup's work.


@kopf.index(GROUP, VERSION, "sessions", when=_owned)
async def session_index(
    namespace: str | None, name: str, body: kopf.Body, **_: Any
) -> dict[Any, Any]:
    """Sessions by key, so that Job and Pod events find their Session without a read (and
    by namespace, see ``filing``)."""
    ns, label = index_key(namespace, name)
    return filing.entry(ns, label, controller().index_session(body))


@kopf.index("batch", "v1", "jobs", labels=SESSION_SELECTOR, when=_owned)
async def job_index(
    namespace: str | None, labels: kopf.Labels, body: kopf.Body, **_: Any
) -> dict[Any, Any]:
    """Runner Jobs by Session (and by namespace, see ``filing``)."""
    return filing.entry(namespace or "", labels[naming.LABEL_SESSION], job_view(dict(body)))


# Indexes arrive as keyword arguments named after their functions; they are read from
# **indexes because kopf's handler protocol does not list them.


@kopf.on.event(GROUP, VERSION, "sessions", when=_owned)
async def on_session(
    event: kopf.RawEvent, body: kopf.Body, namespace: str | None, name: str, **indexes: Any
) -> None:
    """Any change to a Session (including the initial listing after a restart)."""
    if event.get("type") != "DELETED":
        controller().start_workers(indexes)
    await controller().session_event(event.get("type"), body, namespace, name, indexes)


@kopf.on.event("batch", "v1", "jobs", labels=SESSION_SELECTOR, when=_owned)
async def on_job(
    event: kopf.RawEvent,
    body: kopf.Body,
    namespace: str | None,
    labels: kopf.Labels,
    **indexes: Any,
) -> None:
    """A runner Job changed."""
    controller().start_workers(indexes)
    await controller().job_event(event.get("type"), body, namespace, labels, indexes)


@kopf.on.event(
    "networking.k8s.io",
    "v1",
    "networkpolicies",
    labels={naming.LABEL_MANAGED_BY: naming.MANAGED_BY},
    when=_owned,
)
async def on_network_policy(
    event: kopf.RawEvent, body: kopf.Body, namespace: str | None, **_: Any
) -> None:
    """The runner NetworkPolicy of a namespace appeared, changed or went."""
    await controller().network_policy_event(event.get("type"), body, namespace)


@kopf.on.event(GROUP, VERSION, "namespacepolicies", when=_owned)
async def on_policy(
    event: kopf.RawEvent, body: kopf.Body, namespace: str | None, **indexes: Any
) -> None:
    """A NamespacePolicy changed: its Sessions are planned again."""
    await controller().policy_event(event.get("type"), body, namespace, indexes)


@kopf.on.event(GROUP, VERSION, "namespacepolicies", when=_owned)
async def on_policy_usage(
    event: kopf.RawEvent, namespace: str | None, name: str, status: kopf.Status, **_: Any
) -> None:
    """A NamespacePolicy appeared or changed: bring its spend figure up to date."""
    await controller().policy_usage_event(event.get("type"), namespace, name, status)
