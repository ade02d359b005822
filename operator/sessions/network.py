"""The runner pods' NetworkPolicy (pure): deny everything, then let out only what a runner
needs (DNS, the API server, the model API, git hosts and the store on the egress ports),
never private, shared or link-local ranges through the general rule, and let nothing in.

One per namespace, named ``ambient-runners``, selecting every runner pod the operator
makes there (its managed-by label and a Session label). Its rules depend only on the
operator's settings, so one object serves every Session: one create per namespace instead
of one per Session (and no delete per Session afterwards). The operator makes it before the
namespace's first runner Job, refuses to start runners while an object of that name says
something else, and makes it again when it is deleted. NetworkPolicies add up: a tenant
allowed to write NetworkPolicies in its namespace can open more for its own pods, never
for others.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ambient.crds import naming
from ambient.operator.settings import OperatorSettings

DNS_PORTS = ({"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53})


def _split(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def _ports(value: str) -> list[dict[str, Any]]:
    return [{"protocol": "TCP", "port": int(p)} for p in _split(value)]


RUNNER_NETWORK_POLICY = "ambient-runners"
"""The name the operator keeps in every namespace where it runs runners."""


def runner_network_policy(namespace: str, settings: OperatorSettings) -> dict[str, Any]:
    """The NetworkPolicy for the namespace's runner pods."""
    except_ = _split(settings.runner_egress_except)
    general = [
        {"ipBlock": {"cidr": cidr, **({"except": except_} if _covers_all(cidr) else {})}}
        for cidr in _split(settings.runner_egress_cidrs)
    ]
    egress: list[dict[str, Any]] = [
        {
            "to": [
                {
                    "namespaceSelector": {},
                    "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
                }
            ],
            "ports": [dict(p) for p in DNS_PORTS],
        },
        {
            "to": [{"ipBlock": {"cidr": c}} for c in _split(settings.runner_apiserver_cidrs)],
            "ports": _ports(settings.runner_apiserver_ports),
        },
    ]
    if general:
        egress.append({"to": general, "ports": _ports(settings.runner_egress_ports)})
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {
            "name": RUNNER_NETWORK_POLICY,
            "namespace": namespace,
            "labels": {naming.LABEL_MANAGED_BY: naming.MANAGED_BY},
        },
        "spec": {
            "podSelector": {
                "matchLabels": {naming.LABEL_MANAGED_BY: naming.MANAGED_BY},
                "matchExpressions": [{"key": naming.LABEL_SESSION, "operator": "Exists"}],
            },
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [],
            "egress": egress,
        },
    }


def holds(existing: Mapping[str, Any], planned: Mapping[str, Any]) -> bool:
    """Whether a NetworkPolicy read back says what the planned one says (the API server
    leaves out empty lists, so those are not compared) and carries the label the operator
    watches it by: without it, a later change would go unseen."""
    labels = (existing.get("metadata") or {}).get("labels") or {}
    if labels.get(naming.LABEL_MANAGED_BY) != naming.MANAGED_BY:
        return False
    return bool(_dense(existing.get("spec")) == _dense(planned.get("spec")))


def _dense(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _dense(v) for k, v in value.items() if v not in ([], {}, None)}
    if isinstance(value, list):
        return [_dense(v) for v in value]
    return value


def _covers_all(cidr: str) -> bool:
    """Only the IPv4 catch-all gets the exceptions (an ``except`` must lie inside its
    CIDR; a narrowed range is the admin's explicit choice)."""
    return cidr == "0.0.0.0/0"
