"""nodes: the shape of the fake nodes kwok adopts, and when one counts as Ready."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import yaml
from controlplane.nodes import fake_node, node_ready
from controlplane.settings import FAKE_NODES

REGISTRY = Path(__file__).parents[4] / "runners" / "registry.yaml"


def test_a_fake_node_is_annotated_for_kwok_and_untainted() -> None:
    node = fake_node("kwok-node-0")
    assert node["metadata"]["name"] == "kwok-node-0"
    assert node["metadata"]["annotations"]["kwok.x-k8s.io/node"] == "fake"
    assert node["metadata"]["labels"]["kubernetes.io/hostname"] == "kwok-node-0"
    assert node["spec"] == {}
    assert node["status"]["allocatable"] == node["status"]["capacity"]


def _cpu(quantity: str) -> Decimal:
    return Decimal(quantity[:-1]) / 1000 if quantity.endswith("m") else Decimal(quantity)


def test_the_fake_nodes_hold_a_burst_of_ten_thousand_of_the_largest_runner_pods() -> None:
    """bench_scale starts 10,000 runner pods at once; none may wait for room."""
    requests = yaml.safe_load(REGISTRY.read_text())["defaults"]["resources"]["requests"]
    cpu, memory = _cpu(requests["cpu"]), requests["memory"]
    room = fake_node("n")["status"]["allocatable"]
    assert memory.endswith("Mi") and room["memory"].endswith("Ti")
    assert len(FAKE_NODES) * int(room["memory"][:-2]) * 1024 * 1024 >= 10_000 * int(memory[:-2])
    assert len(FAKE_NODES) * int(room["pods"]) >= 10_000
    assert len(FAKE_NODES) * _cpu(room["cpu"]) >= 10_000 * cpu


def test_ready_only_with_a_ready_true_condition() -> None:
    assert not node_ready({})
    assert not node_ready({"status": {"conditions": None}})
    assert not node_ready({"status": {"conditions": [{"type": "Ready", "status": "False"}]}})
    assert node_ready({"status": {"conditions": [{"type": "Ready", "status": "True"}]}})
