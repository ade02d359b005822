"""What the admission webhook knows of NamespacePolicies: what the watch last delivered."""

from __future__ import annotations

from typing import Any

from ambient.webhooks.admission.policy_index import PolicyIndex

H1, H2 = "1" * 64, "2" * 64


def _policy(namespace: str, name: str = "policy", **spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": namespace}, "spec": spec}


def test_nothing_is_known_before_the_first_listing() -> None:
    index = PolicyIndex()
    assert not index.synced
    assert index.snapshot() == ({}, {})
    index.replace_all([])
    assert index.synced


def test_policies_by_namespace_and_key_hashes_by_owner() -> None:
    index = PolicyIndex()
    index.replace_all(
        [
            _policy("team-a", webhookAuth={"apiKeys": {"github": H1}}),
            _policy("team-b", webhookAuth={"apiKeys": {"slack": [H2, 7]}}),
        ]
    )
    policies, owners = index.snapshot()
    assert sorted(policies) == ["team-a", "team-b"]
    assert owners == {H1: "team-a", H2: "team-b"}


def test_a_snapshot_is_never_changed_by_later_events() -> None:
    index = PolicyIndex()
    index.replace_all([_policy("team-a")])
    before = index.snapshot()
    index.upsert(_policy("team-b", webhookAuth={"apiKeys": {"github": H1}}))
    assert sorted(before[0]) == ["team-a"] and before[1] == {}
    index.remove(_policy("team-a"))
    policies, owners = index.snapshot()
    assert sorted(policies) == ["team-b"] and owners == {H1: "team-b"}


def test_an_unreadable_policy_counts_as_an_empty_one() -> None:
    index = PolicyIndex()
    index.replace_all([_policy("team-a", models={"allowed": "not-a-list"})])
    (policy,) = index.snapshot()[0]["team-a"]
    assert policy.metadata.namespace == "team-a" and policy.spec.models.allowed == []
