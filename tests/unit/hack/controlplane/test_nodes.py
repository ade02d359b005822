"""nodes: the shape of the fake nodes kwok adopts, and when one counts as Ready."""

from __future__ import annotations

from controlplane.nodes import fake_node, node_ready


def test_a_fake_node_is_annotated_for_kwok_and_untainted() -> None:
    node = fake_node("kwok-node-0")
    assert node["metadata"]["name"] == "kwok-node-0"
    assert node["metadata"]["annotations"]["kwok.x-k8s.io/node"] == "fake"
    assert node["metadata"]["labels"]["kubernetes.io/hostname"] == "kwok-node-0"
    assert node["spec"] == {}
    assert node["status"]["allocatable"]["pods"] == "2000"


def test_ready_only_with_a_ready_true_condition() -> None:
    assert not node_ready({})
    assert not node_ready({"status": {"conditions": None}})
    assert not node_ready({"status": {"conditions": [{"type": "Ready", "status": "False"}]}})
    assert node_ready({"status": {"conditions": [{"type": "Ready", "status": "True"}]}})
