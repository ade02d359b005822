"""The runner pod's NetworkPolicy (pure): deny everything, then let out only what a runner
needs (DNS, the API server, the model API, git hosts and the store on the egress ports),
never private, shared or link-local ranges through the general rule, and let nothing in.

One per Session, owned by it and selecting only its pods, so it is created with the
runner's identity and goes with the Session. NetworkPolicies add up: a tenant allowed to
write NetworkPolicies in its namespace can open more for its own pods, never for others.
"""

from __future__ import annotations

from typing import Any

from ambient.crds import naming
from ambient.crds.models import Session
from ambient.operator.sessions.builders import owner_reference
from ambient.operator.settings import OperatorSettings

DNS_PORTS = ({"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53})


def _split(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def _ports(value: str) -> list[dict[str, Any]]:
    return [{"protocol": "TCP", "port": int(p)} for p in _split(value)]


def runner_network_policy_name(session: str) -> str:
    """``<session>-runner``, fitted like the other child names."""
    return naming.runner_service_account(session)


def runner_network_policy(session: Session, settings: OperatorSettings) -> dict[str, Any]:
    """The NetworkPolicy for this Session's runner pods."""
    meta = session.metadata
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
            "name": runner_network_policy_name(meta.name),
            "namespace": meta.namespace,
            "labels": {
                naming.LABEL_SESSION: naming.session_label_value(meta.name),
                naming.LABEL_MANAGED_BY: naming.MANAGED_BY,
            },
            "ownerReferences": [owner_reference(session)],
        },
        "spec": {
            "podSelector": {
                "matchLabels": {
                    naming.LABEL_SESSION: naming.session_label_value(meta.name),
                    naming.LABEL_MANAGED_BY: naming.MANAGED_BY,
                }
            },
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [],
            "egress": egress,
        },
    }


def _covers_all(cidr: str) -> bool:
    """Only the IPv4 catch-all gets the exceptions (an ``except`` must lie inside its
    CIDR; a narrowed range is the admin's explicit choice)."""
    return cidr == "0.0.0.0/0"
