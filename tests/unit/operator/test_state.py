"""The controller's one store of per-Session and per-namespace state."""

from __future__ import annotations

from ambient.crds import naming
from ambient.operator.metrics import PolicySample, SessionSample
from ambient.operator.sessions.observe import PodView
from ambient.operator.state import StateStore

NS = "team-alpha"


def _pod(job: str) -> PodView:
    return PodView(name=f"{job}-x", job_name=job, phase="Running")


def test_forget_drops_the_pods_of_every_attempt() -> None:
    """The old handlers dropped only attempt 1's pod on delete: retried attempts leaked."""
    store = StateStore()
    state = store.get((NS, "s"))
    for attempt in (1, 2, 3):
        job = naming.job_name("s", attempt)
        state.pods[job] = _pod(job)
    state.failed, state.deadline, state.phase = True, 1.0, ("Running", "")
    store.namespace(NS).names.update({"s", "other"})
    store.namespace(NS).refused.add("s")
    store.forget((NS, "s"))
    assert store.peek((NS, "s")) is None
    assert len(store) == 0
    assert store.namespace(NS).names == {"other"}
    assert store.namespace(NS).refused == set()
    assert list(store.session_samples()) == []
    # A fresh entry starts empty.
    assert store.get((NS, "s")).pods == {}


def test_peek_does_not_create_and_get_does() -> None:
    store = StateStore()
    assert store.peek((NS, "s")) is None
    assert (NS, "s") not in store
    state = store.get((NS, "s"))
    assert store.get((NS, "s")) is state
    assert store.peek((NS, "s")) is state
    store.forget((NS, "never-seen"))  # forgetting the unknown is harmless
    assert len(store) == 1


def test_samples_for_the_metrics() -> None:
    store = StateStore()
    store.get((NS, "a")).phase = ("Running", "")
    store.get((NS, "b"))  # not yet seen by the watch: no sample
    assert list(store.session_samples()) == [SessionSample(NS, "Running", "")]
    sample = PolicySample(NS, "1.00", "USD", "10.00")
    store.remember_policy(sample)
    store.remember_policy(sample)
    assert store.policy_samples() == [sample]
