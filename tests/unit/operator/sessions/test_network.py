"""The runner pod's NetworkPolicy: default deny, DNS, the API server, the general egress
without internal ranges, owned by and selecting only its own Session's pods."""

from __future__ import annotations

from collections.abc import Callable

from ambient.crds import naming
from ambient.crds.models import Session
from ambient.operator.sessions.network import runner_network_policy
from ambient.operator.settings import OperatorSettings


def test_default_deny_with_only_the_egress_a_runner_needs(
    make_session: Callable[..., Session],
) -> None:
    session = make_session()
    policy = runner_network_policy(session, OperatorSettings())
    spec = policy["spec"]
    assert spec["policyTypes"] == ["Ingress", "Egress"] and spec["ingress"] == []
    assert spec["podSelector"]["matchLabels"] == {
        naming.LABEL_SESSION: naming.session_label_value(session.metadata.name),
        naming.LABEL_MANAGED_BY: naming.MANAGED_BY,
    }
    assert policy["metadata"]["ownerReferences"][0]["uid"] == session.metadata.uid
    dns, apiserver, general = spec["egress"]
    assert {p["port"] for p in dns["ports"]} == {53}
    assert [p["port"] for p in apiserver["ports"]] == [443, 6443]
    (block,) = general["to"]
    assert block["ipBlock"]["cidr"] == "0.0.0.0/0"
    assert "169.254.0.0/16" in block["ipBlock"]["except"]
    assert "10.0.0.0/8" in block["ipBlock"]["except"]
    assert [p["port"] for p in general["ports"]] == [443]


def test_narrowed_egress_takes_no_exceptions(make_session: Callable[..., Session]) -> None:
    settings = OperatorSettings(
        runner_egress_cidrs="203.0.113.0/24", runner_apiserver_cidrs="192.0.2.10/32"
    )
    spec = runner_network_policy(make_session(), settings)["spec"]
    assert spec["egress"][1]["to"] == [{"ipBlock": {"cidr": "192.0.2.10/32"}}]
    assert spec["egress"][2]["to"] == [{"ipBlock": {"cidr": "203.0.113.0/24"}}]
