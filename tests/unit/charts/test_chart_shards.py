"""operator.shards, rendered by the real helm: one Deployment, Lease and PodDisruptionBudget
per shard with selectors that never overlap, the shard map's count, and one shard rendered
exactly as the chart was before shards (an upgrade keeps the Deployment's selector)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.charts.render import refused, render


def _operators(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        d
        for d in docs
        if d["kind"] == "Deployment"
        and d["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/component"] == "operator"
    ]


def _env(deployment: dict[str, Any]) -> dict[str, str]:
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e.get("value", "") for e in container["env"]}


def _shard_map(docs: list[dict[str, Any]]) -> dict[str, Any]:
    return next(d for d in docs if d["metadata"]["name"] == "x-ambient-operator-shards")


def test_one_shard_keeps_the_unsharded_names_and_selector() -> None:
    docs = render()
    (deployment,) = _operators(docs)
    assert deployment["metadata"]["name"] == "x-ambient-operator"
    assert deployment["spec"]["selector"]["matchLabels"] == {
        "app.kubernetes.io/name": "ambient",
        "app.kubernetes.io/instance": "x",
        "app.kubernetes.io/component": "operator",
    }
    env = _env(deployment)
    assert env["AMBIENT_LEADER_ELECTION_LEASE"] == "x-ambient-operator"
    assert (env["AMBIENT_SHARD_MAP"], env["AMBIENT_SHARD_INDEX"]) == (
        "x-ambient-operator-shards",
        "0",
    )
    assert _shard_map(docs)["data"] == {"count": "1"}


def test_three_shards_each_with_a_lease_a_budget_and_their_own_pods() -> None:
    docs = render("operator.shards=3")
    deployments = _operators(docs)
    names = [f"x-ambient-operator-shard-{i}" for i in range(3)]
    assert [d["metadata"]["name"] for d in deployments] == names
    assert [_env(d)["AMBIENT_SHARD_INDEX"] for d in deployments] == ["0", "1", "2"]
    assert [_env(d)["AMBIENT_LEADER_ELECTION_LEASE"] for d in deployments] == names
    assert _shard_map(docs)["data"] == {"count": "3"}
    # No Deployment's selector matches another shard's pods.
    for d in deployments:
        selector = d["spec"]["selector"]["matchLabels"].items()
        matching = [
            o["metadata"]["name"]
            for o in deployments
            if selector <= o["spec"]["template"]["metadata"]["labels"].items()
        ]
        assert matching == [d["metadata"]["name"]]
    budgets = {
        d["metadata"]["name"]: d["spec"]["selector"]["matchLabels"]
        for d in docs
        if d["kind"] == "PodDisruptionBudget" and "-operator" in d["metadata"]["name"]
    }
    assert set(budgets) == set(names)
    assert [budgets[n]["ambient.ai/operator-shard"] for n in names] == ["0", "1", "2"]
    (role,) = [d for d in docs if d["kind"] == "Role" and d["metadata"]["name"].endswith("-leader")]
    named = {n for rule in role["rules"] for n in rule.get("resourceNames", [])}
    assert set(names) | {"x-ambient-operator-shards"} <= named


@pytest.mark.parametrize("shards", ["0", "65"])
def test_a_shard_count_out_of_range_is_refused(shards: str) -> None:
    proc = refused(f"operator.shards={shards}")
    assert proc.returncode != 0
    assert "shards" in proc.stderr
