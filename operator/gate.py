"""The concurrency cap as the controller applies it: who may create a Job now.

Per namespace, admission decisions run one at a time (so two creates never both take the
last slot), counted from the Job index and the creates in flight, never from Session
status; the common case (more free slots than Sessions) needs no scan at all. When slots
free up, the heads of the namespace's queue are queued for a fresh plan, through the
controller's work queue. The rules are ``sessions.capacity`` and ``sessions.lifecycle``
(pure); the counts live in the controller's ``StateStore``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal
from functools import partial
from typing import Any

from ambient.crds import naming
from ambient.crds.models import money
from ambient.operator import filing, usage
from ambient.operator.clock import Clock
from ambient.operator.policies import PolicyCache
from ambient.operator.sessions import capacity, lifecycle
from ambient.operator.settings import OperatorSettings
from ambient.operator.state import Key, NamespaceState, StateStore

SESSION_INDEX = "session_index"
JOB_INDEX = "job_index"


def namespace_sessions(namespace: str, sessions: Any) -> list[dict[str, Any]]:
    """The indexed bodies of a namespace's Sessions."""
    return filing.values(sessions, namespace)


class Gate:
    """The concurrency cap of every namespace. ``indexes`` is the controller's view of
    kopf's indexes (read when needed); ``wake`` queues a Session for a plan that must
    not be skipped."""

    def __init__(
        self,
        *,
        state: StateStore,
        clock: Clock,
        settings: OperatorSettings,
        policies: PolicyCache,
        indexes: Mapping[str, Any],
        wake: Callable[[Key], None],
    ) -> None:
        self.state = state
        self.clock = clock
        self.settings = settings
        self.policies = policies
        self.indexes = indexes
        self.wake = wake

    def cap(self, namespace: str) -> int:
        return capacity.cap_of(
            self.policies.policy(namespace), self.settings.default_max_concurrent_sessions
        )

    async def admit(
        self, namespace: str, body: dict[str, Any], job_name: str, jobs: Any
    ) -> lifecycle.Admission:
        """Whether the Session may create ``job_name`` now; if so, the create counts
        against the cap until the watch shows the Job (or ``release``)."""
        space = self.state.namespace(namespace)
        name = body["metadata"]["name"]
        async with space.lock:
            claim = self._budget_claim(namespace, body, space)
            if claim is None:
                # The budgets reserved by unfinished Sessions leave too little: it waits
                # for one to finish (issue 17, finding 6), queued like a Session the cap
                # has no slot for.
                space.refused.add(name)
                return lifecycle.Admission(False, position=1, waiting=1)
            cap = self.cap(namespace)
            if capacity.admits_without_scan(
                len(space.active_jobs), len(space.inflight), len(space.names), cap
            ):
                space.inflight[job_name] = (name, self.clock.monotonic())
                space.refused.discard(name)
                space.claims[name] = claim
                return lifecycle.Admission(True)
            found = self._occupancy(namespace, jobs)
            waiting = self._waiting(namespace, found.busy, jobs)
            admission = lifecycle.admit(lifecycle.fifo_key(body), waiting, len(found.active), cap)
            if admission.admitted:
                space.inflight[job_name] = (name, self.clock.monotonic())
                space.refused.discard(name)
                space.claims[name] = claim
            else:
                space.refused.add(name)
            return admission

    def _budget_claim(
        self, namespace: str, body: dict[str, Any], space: NamespaceState
    ) -> tuple[str, Decimal] | None:
        """The Session's (uid, budget) to reserve, or None when the month's budget cannot
        hold it next to the ledger and the claims of Sessions admitted since."""
        uid = str(body["metadata"].get("uid") or body["metadata"]["name"])
        raw = ((body.get("spec") or {}).get("policy") or {}).get("modelConstraints") or {}
        try:
            budget = money(str(raw.get("budget") or "0"))
        except ValueError:
            budget = Decimal(0)
        policy = self.policies.policy(namespace)
        limit = policy.spec.models.budget if policy is not None else None
        if policy is None or limit is None:
            return (uid, budget)
        month = usage.month_of(self.clock.now())
        status = policy.status
        ledger = {e.uid: money(e.charge) for e in status.ledger} if status.month == month else {}
        entries = dict(ledger)
        claims = {u: amount for u, amount in space.claims.values()}
        for name, (other, amount) in list(space.settling.items()):
            cost = self._finished_cost(namespace, name)
            if cost is not None:
                # Finished and still indexed: charged what the next roll-up will write,
                # its cost, so a Session queued for its budget need not wait for it.
                entries[other] = cost
            elif other not in ledger:
                claims[other] = amount  # deleted before the ledger had it: its budget
            if other in ledger and (cost is None or ledger[other] == cost):
                del space.settling[name]
        if usage.reservation_fits(money(limit.monthly), entries, claims, uid, budget):
            return (uid, budget)
        return None

    def _finished_cost(self, namespace: str, name: str) -> Decimal | None:
        """The reported cost of a Session the index holds as finished, else None."""
        key = (namespace, naming.session_label_value(name))
        for body in (self.indexes.get(SESSION_INDEX) or {}).get(key, []):
            status = body.get("status") or {}
            if body["metadata"]["name"] == name and status.get("phase") in usage.FINISHED:
                return usage.session_cost(body)
        return None

    def release(self, namespace: str, job_name: str) -> None:
        """A create that failed no longer holds a slot."""
        self.state.namespace(namespace).inflight.pop(job_name, None)

    def job_changed(self, namespace: str, job_name: str, active: bool) -> None:
        """A runner Job changed; one that finished or went frees a slot, so wake the
        queue (only when someone waits in it)."""
        space = self.state.namespace(namespace)
        if active:
            space.active_jobs.add(job_name)
        else:
            space.active_jobs.discard(job_name)
            if space.refused:
                self.kick(namespace)

    def session_seen(self, namespace: str, name: str, finished: bool) -> None:
        space = self.state.namespace(namespace)
        space.names.add(name)
        if finished:
            space.refused.discard(name)
            claim = space.claims.pop(name, None)
            if claim is not None:  # held until the ledger charges its cost instead
                space.settling[name] = claim
                if space.refused:
                    self.kick(namespace)  # its budget may be what a queued one waits for

    def kick(self, namespace: str) -> None:
        """Wake the queued Sessions that free slots would admit, soon: the events of a
        burst (many Jobs finishing at once) share one look at the namespace."""
        space = self.state.namespace(namespace)
        if space.kicked:
            return
        space.kicked = True
        self.clock.call_later(self.settings.kick_delay_seconds, partial(self._wake, namespace))

    def _wake(self, namespace: str) -> None:
        """Queue the heads of the namespace's queue for a fresh plan. Through the work
        queue, so the reconciles stay bounded by the workers, and a Session being
        reconciled right now is planned again when its worker is done."""
        self.state.namespace(namespace).kicked = False
        jobs = self.indexes.get(JOB_INDEX)
        if jobs is None:
            return
        found = self._occupancy(namespace, jobs)
        waiting = self._waiting(namespace, found.busy, jobs)
        for key in lifecycle.heads(waiting, len(found.active), self.cap(namespace)):
            self.wake((namespace, key[1]))

    def _occupancy(self, namespace: str, jobs: Any) -> capacity.Occupancy:
        inflight = self.state.namespace(namespace).inflight
        horizon = self.clock.monotonic() - self.settings.inflight_seconds
        found = capacity.occupancy(filing.entries(jobs, namespace), inflight, horizon)
        for job in found.expired:
            inflight.pop(job, None)
        return found

    def _waiting(self, namespace: str, busy: Iterable[str], jobs: Any) -> list[tuple[str, str]]:
        bodies = namespace_sessions(namespace, self.indexes.get(SESSION_INDEX, {}))
        return capacity.waiting(namespace, bodies, busy, jobs)
