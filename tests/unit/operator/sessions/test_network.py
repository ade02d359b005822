"""The runner pods' NetworkPolicy: default deny, DNS, the API server, the general egress
without internal ranges; one per namespace, selecting the operator's runner pods only."""

from __future__ import annotations

import copy
from collections.abc import Callable

from ambient.crds import naming
from ambient.crds.models import Session
from ambient.operator.sessions import builders
from ambient.operator.sessions.network import RUNNER_NETWORK_POLICY, holds, runner_network_policy
from ambient.operator.settings import OperatorSettings
from ambient.runners.registry import load, resolve


def test_default_deny_with_only_the_egress_a_runner_needs() -> None:
    policy = runner_network_policy("team-a", OperatorSettings())
    assert (policy["metadata"]["name"], policy["metadata"]["namespace"]) == (
        RUNNER_NETWORK_POLICY,
        "team-a",
    )
    assert "ownerReferences" not in policy["metadata"]  # the namespace's, not a Session's
    spec = policy["spec"]
    assert spec["policyTypes"] == ["Ingress", "Egress"] and spec["ingress"] == []
    assert spec["podSelector"] == {
        "matchLabels": {naming.LABEL_MANAGED_BY: naming.MANAGED_BY},
        "matchExpressions": [{"key": naming.LABEL_SESSION, "operator": "Exists"}],
    }
    dns, apiserver, general = spec["egress"]
    assert {p["port"] for p in dns["ports"]} == {53}
    assert [p["port"] for p in apiserver["ports"]] == [443, 6443]
    (block,) = general["to"]
    assert block["ipBlock"]["cidr"] == "0.0.0.0/0"
    assert "169.254.0.0/16" in block["ipBlock"]["except"]
    assert "10.0.0.0/8" in block["ipBlock"]["except"]
    assert [p["port"] for p in general["ports"]] == [443]


def test_narrowed_egress_takes_no_exceptions() -> None:
    settings = OperatorSettings(
        runner_egress_cidrs="203.0.113.0/24", runner_apiserver_cidrs="192.0.2.10/32"
    )
    spec = runner_network_policy("team-a", settings)["spec"]
    assert spec["egress"][1]["to"] == [{"ipBlock": {"cidr": "192.0.2.10/32"}}]
    assert spec["egress"][2]["to"] == [{"ipBlock": {"cidr": "203.0.113.0/24"}}]


def test_it_selects_every_runner_pod_and_nothing_else(make_session: Callable[..., Session]) -> None:
    """The Job builder's pod labels meet the selector; a pod without them does not."""
    selector = runner_network_policy("team-a", OperatorSettings())["spec"]["podSelector"]

    def selects(labels: dict[str, str]) -> bool:
        wanted = selector["matchLabels"].items() <= labels.items()
        return wanted and all(e["key"] in labels for e in selector["matchExpressions"])

    session = make_session()
    job_name = naming.job_name(session.metadata.name, 1)
    runner = resolve(load(), "script")
    context = builders.context_json(builders.runner_context(session, runner, job_name))
    job = builders.runner_job(session, runner, OperatorSettings(), job_name, context)
    assert selects(job["spec"]["template"]["metadata"]["labels"])
    assert not selects({naming.LABEL_SESSION: "x"})  # someone else's pod
    assert not selects({naming.LABEL_MANAGED_BY: naming.MANAGED_BY})  # not a runner


def test_a_policy_read_back_holds_unless_it_says_something_else() -> None:
    planned = runner_network_policy("team-a", OperatorSettings())
    # The API server leaves out empty lists (no ingress rules) and adds metadata.
    stored = copy.deepcopy(planned)
    del stored["spec"]["ingress"]
    stored["metadata"]["resourceVersion"] = "7"
    assert holds(stored, planned)
    opened = copy.deepcopy(stored)
    opened["spec"]["ingress"] = [{}]  # lets everything in
    assert not holds(opened, planned)
    narrowed = copy.deepcopy(stored)
    narrowed["spec"]["podSelector"] = {"matchLabels": {"app": "nothing"}}
    assert not holds(narrowed, planned)
    assert not holds({"metadata": {}}, planned)
    unwatched = copy.deepcopy(stored)
    del unwatched["metadata"]["labels"]  # the same rules, but changes to it go unseen
    assert not holds(unwatched, planned)
