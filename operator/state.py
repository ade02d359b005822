"""Everything the controller remembers between events, in one place.

Per Session: what its last reconcile saw, the status this process wrote, its runner pods,
the Job it created that the watch has not shown, its deadline, and so on; one ``forget``
drops all of it when the Session is deleted. Per namespace: the counts the concurrency
cap reads as the watches go (so the common case costs no scan of every Session and Job).
Nothing is copied per Session beyond what the watches already hold.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from ambient.operator.metrics import PolicySample, SessionSample
from ambient.operator.sessions.observe import JobView, PodView

Key = tuple[str, str]
"""(namespace, Session name)."""


@dataclass(slots=True, eq=False)
class SessionState:
    """What the controller knows of one Session beyond the watch-fed indexes."""

    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    """Reconciles of one Session are serialised within this process."""
    last_seen: tuple[Any, ...] | None = None
    """What its last reconcile saw, to skip events that change nothing the planner reads."""
    written: tuple[str, dict[str, Any]] | None = None
    """The status this process wrote last, with the resourceVersion it replaced: a body
    still at that version is stale, and the written one is used instead."""
    pods: dict[str, PodView] = field(default_factory=dict)
    """The runner pod as last read, by Job name (one per attempt)."""
    created: JobView | None = None
    """The Job this process created that the Job watch may not have delivered yet."""
    deadline: float | None = None
    """When it must be re-planned even without an event (epoch seconds)."""
    failed: bool = False
    """Its last reconcile failed: the resync loop runs it again once ``retry_at`` passed."""
    failures: int = 0
    """Consecutive failed reconciles (0 after a success); sets the backoff."""
    retry_at: float | None = None
    """When a failed Session may be reconciled again (monotonic seconds)."""
    failed_on: tuple[Any, str] | None = None
    """Its generation and annotations when it last failed: until its backoff ends, only a
    change of these is acted on at once."""
    forced: bool = False
    """Queued for a plan that must not be skipped as unchanged (a slot may have opened
    without any event of its own)."""
    recorded: float | None = None
    """When its status was last written, or its Job created (monotonic seconds)."""
    deferred: bool = False
    """A progress reconcile waits for the progress interval to pass."""
    phase: tuple[str, str] | None = None
    """Phase and reason as last seen by the watch (for the metrics)."""
    settle_until: float | None = None
    """Until when a status that only says the work goes on (its Job created, its pod
    running) waits for the next news, so both go in one write (monotonic seconds; see
    ``settle_seconds``)."""
    pod_recheck: bool = False
    """A timer will read its Pending pod again (``pod_recheck_seconds``)."""
    pod_rechecks: tuple[str, int] = ("", 0)
    """The Job whose Pending pod was read again, and how many times in a row."""
    pod_due: str = ""
    """The Job whose waiting pod the next reconcile reads (the recheck timer fired)."""
    settle_news: tuple[str, ...] | None = None
    """The phase, reason and last history event that last waited: each news waits once."""
    settle_window: int = 0
    """Counts the settle windows opened: a window closed by another write leaves its
    timer behind, which must not end a later window early."""


@dataclass(slots=True, eq=False)
class NamespaceState:
    """What the concurrency cap counts per namespace."""

    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    """Admission decisions run one at a time, so two creates never both take the last slot."""
    names: set[str] = field(default_factory=set)
    """The Sessions seen."""
    active_jobs: set[str] = field(default_factory=set)
    """The runner Jobs unfinished."""
    refused: set[str] = field(default_factory=set)
    """Sessions the cap refused: a Job finishing wakes the queue only when someone waits."""
    inflight: dict[str, tuple[str, float]] = field(default_factory=dict)
    """Jobs created but not yet seen by the watch: Job name -> (Session, monotonic time)."""
    kicked: bool = False
    """A look at the namespace's queue is scheduled."""
    claims: dict[str, tuple[str, Decimal]] = field(default_factory=dict)
    """Budgets of the Sessions admitted and not yet finished: name -> (uid, budget). With
    the ledger they make the budget check at the gate (``usage.reservation_fits``)."""
    settling: dict[str, tuple[str, Decimal]] = field(default_factory=dict)
    """Claims of finished Sessions, held until the ledger shows what they cost."""
    network_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    """Only one of the namespace's Sessions makes or checks its runner NetworkPolicy."""
    network_ready: bool = False
    """The runner NetworkPolicy is there and says what it should (until the watch says it
    was deleted or changed)."""
    policy_seen: tuple[int, bool] | tuple[()] | None = ()
    """What admitted Sessions last saw of the policy (see ``lifecycle.policy_signature``);
    () until a policy event was handled."""


class StateStore:
    """Per-Session and per-namespace state. ``get`` makes a Session's entry, ``peek`` does
    not (for callbacks that may run after the Session was deleted)."""

    def __init__(self) -> None:
        self._sessions: dict[Key, SessionState] = {}
        self._namespaces: dict[str, NamespaceState] = {}
        self.settling: set[Key] = set()
        """Sessions whose progress-only status waits for its settle time (how busy it is)."""
        # Each policy's spend and budget as the last retention pass read them (the
        # metrics). Written from the retention thread: one assignment, never a new entry
        # of the structures above.
        self._policy_samples: dict[str, PolicySample] = {}

    def __len__(self) -> int:
        return len(self._sessions)

    def __contains__(self, key: object) -> bool:
        return key in self._sessions

    def get(self, key: Key) -> SessionState:
        state = self._sessions.get(key)
        if state is None:
            state = self._sessions[key] = SessionState()
        return state

    def peek(self, key: Key) -> SessionState | None:
        return self._sessions.get(key)

    def items(self) -> Iterator[tuple[Key, SessionState]]:
        yield from list(self._sessions.items())

    def namespace(self, namespace: str) -> NamespaceState:
        state = self._namespaces.get(namespace)
        if state is None:
            state = self._namespaces[namespace] = NamespaceState()
        return state

    def namespaces(self) -> Iterator[tuple[str, NamespaceState]]:
        yield from list(self._namespaces.items())

    def forget(self, key: Key) -> None:
        """The Session was deleted: drop everything known of it."""
        self._sessions.pop(key, None)
        self.settling.discard(key)
        space = self._namespaces.get(key[0])
        if space is not None:
            space.names.discard(key[1])
            space.refused.discard(key[1])

    def session_samples(self) -> Iterator[SessionSample]:
        """Phase and reason of every Session the watch has shown (for the metrics)."""
        for (namespace, _), state in list(self._sessions.items()):
            if state.phase is not None:
                yield SessionSample(namespace, *state.phase, failures=state.failures)

    def remember_policy(self, sample: PolicySample) -> None:
        """Keep a policy's spend and budget for the metrics (safe from any thread)."""
        self._policy_samples[sample.namespace] = sample

    def policy_samples(self) -> list[PolicySample]:
        return list(self._policy_samples.values())
