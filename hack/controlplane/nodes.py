"""The fake nodes kwok plays the kubelet for: their shape (pure) and registering them."""

from __future__ import annotations

from typing import Any

from .errors import ClusterError
from .probes import api
from .settings import FAKE_NODES, KWOK_NODE_ANNOTATION, Settings

# Room for a whole burst: the benchmarks start 10,000 runner pods at 250m each, and
# nodes that hold only part of them (64 CPUs each held 512) make the scheduler retry
# thousands of unschedulable pods each time one finishes, a storm that measured the
# scheduler, not the operator (docs/benchmarks.md, issue 19, eighth pass).
NODE_RESOURCES = {"cpu": "4000", "memory": "16Ti", "pods": "10000", "ephemeral-storage": "64Ti"}


def fake_node(name: str) -> dict[str, Any]:
    """A node kwok adopts (by annotation). No taints, so ordinary pods schedule here."""
    resources = dict(NODE_RESOURCES)
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {KWOK_NODE_ANNOTATION: "fake", "node.alpha.kubernetes.io/ttl": "0"},
            "labels": {
                "type": "kwok",
                "kubernetes.io/arch": "amd64",
                "kubernetes.io/os": "linux",
                "kubernetes.io/hostname": name,
                "kubernetes.io/role": "agent",
                "node-role.kubernetes.io/agent": "",
            },
        },
        "spec": {},
        "status": {
            "capacity": resources,
            "allocatable": resources,
            "nodeInfo": {"architecture": "amd64", "operatingSystem": "linux"},
        },
    }


def node_ready(node: Any) -> bool:
    """Whether a Node object says Ready=True (kwok sets it once it has adopted the node)."""
    conditions = node.get("status", {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def ensure_nodes(settings: Settings) -> None:
    """Create the fake nodes; existing ones (from an earlier run) are left as they are."""
    for name in FAKE_NODES:
        status, body = api(settings, "POST", "/api/v1/nodes", fake_node(name))
        if status not in (201, 409):
            raise ClusterError(f"creating node {name} failed: HTTP {status}: {body}")


def nodes_ready(settings: Settings) -> bool:
    for name in FAKE_NODES:
        status, node = api(settings, "GET", f"/api/v1/nodes/{name}")
        if status != 200 or not node_ready(node):
            return False
    return True


def default_service_account_exists(settings: Settings) -> bool:
    """Pods are refused until the SA controller has made `default`; wait so tests need not."""
    status, _ = api(settings, "GET", "/api/v1/namespaces/default/serviceaccounts/default")
    return status == 200
