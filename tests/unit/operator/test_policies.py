"""The operator's one NamespacePolicy cache."""

from __future__ import annotations

from typing import Any

from ambient.operator.policies import PolicyCache


def _body(name: str, namespace: str = "team-a", rv: str = "1", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "ambient.ai/v1alpha1",
        "kind": "NamespacePolicy",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "resourceVersion": rv,
            "generation": 1,
            "managedFields": [{"manager": "kubectl"}],
        },
        "spec": spec,
        "status": {"month": "2026-03", "monthToDateSpend": "1.25"},
    }


def test_keeps_the_parsed_policy_and_its_status_per_namespace() -> None:
    cache = PolicyCache()
    assert cache.keep(_body("policy", maxConcurrentSessions=7)) is None
    assert cache.keep(_body("other", namespace="team-b")) is None
    policy = cache.policy("team-a")
    assert policy is not None and policy.spec.max_concurrent_sessions == 7
    assert cache.policy("team-c") is None
    assert {(k.namespace, k.name, k.status["monthToDateSpend"]) for k in cache} == {
        ("team-a", "policy", "1.25"),
        ("team-b", "other", "1.25"),
    }
    assert len(cache) == 2


def test_a_change_replaces_the_policy_and_a_delete_forgets_it() -> None:
    cache = PolicyCache()
    cache.keep(_body("policy", maxConcurrentSessions=7))
    cache.keep(_body("policy", rv="2", maxConcurrentSessions=3))
    policy = cache.policy("team-a")
    assert policy is not None and policy.spec.max_concurrent_sessions == 3
    cache.keep(_body("policy"), deleted=True)
    assert cache.policy("team-a") is None
    assert len(cache) == 0


def test_the_first_policy_by_name_decides_when_a_namespace_has_several() -> None:
    cache = PolicyCache()
    cache.keep(_body("zeta", maxConcurrentSessions=9))
    cache.keep(_body("alpha", maxConcurrentSessions=2))
    policy = cache.policy("team-a")
    assert policy is not None and policy.metadata.name == "alpha"


def test_an_unreadable_policy_is_reported_and_reads_as_none() -> None:
    cache = PolicyCache()
    cache.keep(_body("policy", maxConcurrentSessions=7))
    error = cache.keep(_body("policy", rv="2", maxConcurrentSessions="many"))
    assert error is not None and "maxConcurrentSessions" in str(error)
    assert cache.policy("team-a") is None  # not the earlier version: it no longer says that
    assert [k.name for k in cache] == ["policy"]  # the usage roll-up still sees it
