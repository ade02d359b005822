"""The concurrency cap's bookkeeping (pure)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from ambient.crds import naming
from ambient.crds.models import NamespacePolicy, Session
from ambient.operator.sessions import capacity, lifecycle
from ambient.operator.sessions.observe import JobView
from ambient.runners.registry import Registry

NS = "team-alpha"


def _job(name: str, *, done: bool = False) -> JobView:
    return JobView(name=name, owner_uid="u", complete=done)


def test_the_fast_path_admits_only_when_every_session_would_fit() -> None:
    assert capacity.admits_without_scan(active_jobs=1, inflight=1, sessions=3, cap=5)
    assert not capacity.admits_without_scan(active_jobs=1, inflight=1, sessions=4, cap=5)
    assert capacity.admits_without_scan(0, 0, 0, 0)


def test_occupancy_counts_unfinished_jobs_and_recent_creates() -> None:
    jobs = [("a", [_job("a-a1")]), ("b", [_job("b-a1", done=True)])]
    inflight = {"a-a1": ("a", 50.0), "d-a1": ("d", 50.0), "e-a1": ("e", 5.0)}
    found = capacity.occupancy(jobs, inflight, horizon=10.0)
    assert found.active == {"a-a1", "d-a1"}
    assert found.busy == {"a", "d"}
    # Seen by the watch already, or too old to count.
    assert sorted(found.expired) == ["a-a1", "e-a1"]
    assert inflight == {"a-a1": ("a", 50.0), "d-a1": ("d", 50.0), "e-a1": ("e", 5.0)}


def test_waiting_is_who_wants_a_job_and_has_none_for_this_attempt(
    make_body: Callable[..., dict[str, Any]],
) -> None:
    bodies = [
        make_body(name="busy"),
        make_body(name="done", status={"phase": "Completed"}),
        make_body(name="between", status={"attempt": 2}),
        make_body(name="wants"),
        make_body(name="held", approval_required=True),
    ]
    jobs = {(NS, "between"): [_job(naming.job_name("between", 2), done=True)]}
    found = capacity.waiting(NS, bodies, {"busy"}, jobs)
    assert found == [lifecycle.fifo_key(bodies[3])]


def _policy(cap: int, generation: int = 3) -> NamespacePolicy:
    return NamespacePolicy.model_validate(
        {
            "metadata": {"name": "default", "namespace": NS, "generation": generation},
            "spec": {"maxConcurrentSessions": cap},
        }
    )


def test_the_cap_comes_from_the_policy_or_the_default() -> None:
    assert capacity.cap_of(None, 50) == 50
    assert capacity.cap_of(_policy(3), 50) == 3


def test_the_policy_context(
    make_session: Callable[..., Session], registry: Registry, now: datetime
) -> None:
    session = make_session()
    assert capacity.policy_context(
        None, session, registry=registry, identity="op", default_cap=7, now=now
    ) == lifecycle.Context(cap=7)
    ctx = capacity.policy_context(
        _policy(3), session, registry=registry, identity="op", default_cap=7, now=now
    )
    assert (ctx.cap, ctx.policy_generation, ctx.has_policy) == (3, 3, True)
    queued = capacity.queued_context(ctx, lifecycle.Admission(False, 2, 4), 3)
    assert (queued.admitted, queued.queue_position, queued.queue_length) == (False, 2, 4)
    assert (queued.cap, queued.policy_generation, queued.has_policy) == (3, 3, True)


def test_the_policys_blocked_tools_reach_the_runner_context(
    make_session: Callable[..., Session], registry: Registry, now: datetime
) -> None:
    policy = NamespacePolicy.model_validate(
        {
            "metadata": {"name": "default", "namespace": NS, "generation": 1},
            "spec": {"tools": {"allowed": ["Read"], "blocked": ["Bash", "WebFetch"]}},
        }
    )
    ctx = capacity.policy_context(
        policy, make_session(), registry=registry, identity="op", default_cap=7, now=now
    )
    assert ctx.blocked_tools == ("Bash", "WebFetch")
    queued = capacity.queued_context(ctx, lifecycle.Admission(False, 1, 1), 7)
    assert queued.blocked_tools == ("Bash", "WebFetch")
