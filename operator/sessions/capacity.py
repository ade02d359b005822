"""The concurrency cap's bookkeeping: who holds a slot, who waits, and the fast path.

Pure: the controller passes in the Job index, the creates it has in flight and the time
horizon; nothing here reads a clock or the API. The FIFO rules themselves are
``lifecycle.admit`` and ``lifecycle.heads``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ambient.crds import naming
from ambient.crds.models import NamespacePolicy, Session
from ambient.operator.sessions import lifecycle
from ambient.operator.sessions.observe import JobView
from ambient.runners.registry import Registry

# What the Job index holds: (namespace, Session label) -> the Session's Jobs.
JobIndex = Mapping[tuple[str, str], Iterable[JobView]]
# Creates not yet seen by the Job watch, per namespace: Job name -> (Session name, when).
Inflight = Mapping[str, tuple[str, float]]


def admits_without_scan(active_jobs: int, inflight: int, sessions: int, cap: int) -> bool:
    """More free slots than Sessions in the namespace (counting generously: a Job both in
    flight and seen counts twice): whatever their order, any Session is admitted, so the
    decision needs no scan of every Session and Job (once per admission, that is quadratic
    in a burst)."""
    return active_jobs + inflight + sessions <= cap


@dataclass(frozen=True)
class Occupancy:
    """Unfinished runner Jobs in a namespace and the Sessions that own them."""

    active: frozenset[str]
    busy: frozenset[str]
    """Session labels with an unfinished Job (or a create in flight)."""
    expired: tuple[str, ...] = ()
    """Creates in flight the watch has shown since, or that are too old to count."""


def occupancy(
    jobs: Iterable[tuple[str, Iterable[JobView]]], inflight: Inflight, horizon: float
) -> Occupancy:
    """Unfinished runner Jobs (the namespace's indexed ones, by Session label, plus creates
    the watch has not shown yet, those made after ``horizon``) and the Sessions that own
    them."""
    active: set[str] = set()
    busy: set[str] = set()
    indexed: set[str] = set()
    for label, views in jobs:
        for view in views:
            indexed.add(view.name)
            if lifecycle.job_active(view):
                active.add(view.name)
                busy.add(label)
    expired = []
    for job, (session, since) in inflight.items():
        if job in indexed or since < horizon:
            expired.append(job)
            continue
        active.add(job)
        busy.add(naming.session_label_value(session))
    return Occupancy(frozenset(active), frozenset(busy), tuple(expired))


def waiting(
    namespace: str, bodies: Iterable[Mapping[str, Any]], busy: Iterable[str], jobs: JobIndex
) -> list[tuple[str, str]]:
    """Sessions that want a Job: none running and none (even finished) for their current
    attempt, which would mean only the status write is still to come. FIFO keys."""
    busy = set(busy)
    found = []
    for body in bodies:
        name = body["metadata"]["name"]
        label = naming.session_label_value(name)
        if label in busy or not lifecycle.wants_job(dict(body)):
            continue
        current = naming.job_name(name, (body.get("status") or {}).get("attempt") or 1)
        if any(j.name == current for j in jobs.get((namespace, label), [])):
            continue
        found.append(lifecycle.fifo_key(dict(body)))
    return found


def cap_of(policy: NamespacePolicy | None, default: int) -> int:
    """The namespace's concurrency cap: its policy's, else the operator's default."""
    return default if policy is None else policy.spec.max_concurrent_sessions


def policy_context(
    policy: NamespacePolicy | None,
    session: Session,
    *,
    registry: Registry,
    identity: str,
    default_cap: int,
    now: datetime,
    require_policy: bool = False,
) -> lifecycle.Context:
    """What the planner needs of the namespace's policy for this Session: its lifecycle,
    its cap, and (for an unfinished Session) what it no longer allows. ``require_policy``:
    a Session not started yet in a namespace without a policy is refused."""
    if policy is None:
        unstarted = session.status.phase.value not in ("Completed", "Failed") and (
            not session.status.workload.job_name
        )
        if require_policy and unstarted:
            return lifecycle.Context(cap=default_cap, refusals=(lifecycle.no_policy(session),))
        return lifecycle.Context(cap=default_cap)
    found: tuple[Any, ...] = ()
    refused: tuple[Any, ...] = ()
    if session.status.phase.value not in ("Completed", "Failed"):
        found = lifecycle.violations(policy, session, registry, identity, now)
        if not session.status.workload.job_name:  # not started: every rule applies
            refused = lifecycle.refusals(policy, session, registry, identity, now)
    return lifecycle.Context(
        refusals=refused,
        lifecycle=policy.spec.lifecycle,
        cap=policy.spec.max_concurrent_sessions,
        violations=found,
        policy_generation=policy.metadata.generation,
        has_policy=True,
        blocked_tools=tuple(policy.spec.tools.blocked),
    )


def queued_context(
    ctx: lifecycle.Context, admission: lifecycle.Admission, cap: int
) -> lifecycle.Context:
    """The context that plans a Session the cap did not admit: its place in the queue."""
    return lifecycle.Context(
        lifecycle=ctx.lifecycle,
        admitted=False,
        queue_position=admission.position,
        queue_length=admission.waiting,
        cap=cap,
        violations=ctx.violations,
        policy_generation=ctx.policy_generation,
        has_policy=ctx.has_policy,
        blocked_tools=ctx.blocked_tools,
        refusals=ctx.refusals,
    )
