"""The ``ambient`` command against the real local control plane, run as a user runs it
(its console script, and through kubectl as the plugin ``kubectl ambient``): list, get,
approve, cancel, usage, and the timeline of a Session that waited for approval and was
retried, drawn in the terminal and as an HTML page."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

pytestmark = pytest.mark.integration

BIN = Path(sys.executable).parent
G, V = "ambient.ai", "v1alpha1"


def ambient(cluster, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [str(BIN / "ambient"), *args],
        capture_output=True,
        text=True,
        env=cluster.env,
        timeout=120,
        check=False,
    )
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def _session(name: str, annotations: dict[str, str], approval: bool = False) -> dict[str, Any]:
    return {
        "apiVersion": f"{G}/{V}",
        "kind": "Session",
        "metadata": {"name": name, "annotations": annotations},
        "spec": {
            "trigger": {"source": "manual", "event": "test", "payload": {"n": 1}},
            "framework": {"type": "script", "config": {"command": ["true"]}},
            # Under a monthly budget every Session carries its own.
            "policy": {"approvalRequired": approval, "modelConstraints": {"budget": "1"}},
        },
    }


def _policy(cluster, namespace: str) -> None:
    policy = {
        "apiVersion": f"{G}/{V}",
        "kind": "NamespacePolicy",
        "metadata": {"name": "policy"},
        "spec": {
            "lifecycle": {"retries": {"limit": 1}},
            "models": {"budget": {"monthly": "100"}},
        },
    }
    cluster.apply(policy, namespace)
    cluster.wait_for(
        "the operator to see the policy",
        lambda: (
            cluster.custom.get_namespaced_custom_object(
                G, V, namespace, "namespacepolicies", "policy"
            )
            .get("status", {})
            .get("month")
        ),
    )


def test_approve_then_draw_the_retried_session(cluster, operator, namespace, tmp_path: Path):
    _policy(cluster, namespace)
    oom = {"sim.ambient.ai/exit-code": "137", "sim.ambient.ai/reason": "OOMKilled"}
    cluster.custom.create_namespaced_custom_object(
        G, V, namespace, "sessions", _session("gated", oom, approval=True)
    )
    cluster.wait_for(
        "awaiting approval",
        lambda: (
            cluster.session(namespace, "gated").get("status", {}).get("reason")
            == "AwaitingApproval"
        ),
    )
    listed = json.loads(ambient(cluster, "-n", namespace, "sessions", "list", "-o", "json").stdout)
    assert [(i["metadata"]["name"], i["status"]["reason"]) for i in listed] == [
        ("gated", "AwaitingApproval")
    ]
    table = ambient(cluster, "-n", namespace, "sessions", "list").stdout
    assert "gated" in table and "AwaitingApproval" in table

    approved = ambient(cluster, "-n", namespace, "sessions", "approve", "gated").stdout
    me = approved.rsplit(" by ", 1)[1].strip()
    assert me  # whoever the kubeconfig logs in as
    status = cluster.wait_phase(namespace, "gated", "Failed", timeout=120)["status"]
    assert (status["reason"], status["attempt"]) == ("OOMKilled", 2)
    approvals = [e for e in status["history"] if e["event"] == "Approved"]
    assert approvals[0]["data"]["approvedBy"] == me

    text = ambient(cluster, "-n", namespace, "sessions", "timeline", "gated").stdout
    for expected in ("awaiting approval", "attempt 1 (gated-a1)", "attempt 2 (gated-a2)"):
        assert expected in text, text
    assert "AttemptFailed" in text and "approvedBy=" in text
    page = tmp_path / "gated.html"
    ambient(cluster, "-n", namespace, "sessions", "timeline", "gated", "--html", str(page))
    html = page.read_text()
    assert html.count('class="mark"') == len(status["history"])
    assert html.count('class="span"') >= 4  # pending, awaiting approval, two attempts
    assert "ended by AttemptFailed" in html

    got = ambient(cluster, "-n", namespace, "sessions", "get", "gated", "-o", "yaml").stdout
    got = yaml.safe_load(got)
    assert got["metadata"]["uid"] == cluster.session(namespace, "gated")["metadata"]["uid"]
    usage = json.loads(ambient(cluster, "usage", "-o", "json").stdout)
    assert namespace in {p["metadata"]["namespace"] for p in usage}


def test_cancel_through_the_plugin_and_clear_errors(cluster, operator, namespace):
    slow = {"sim.ambient.ai/duration": "300s"}
    cluster.custom.create_namespaced_custom_object(
        G, V, namespace, "sessions", _session("slow", slow)
    )
    cluster.wait_phase(namespace, "slow", "Running")
    kubectl = shutil.which("kubectl") or cluster.kubectl_bin
    env = {**cluster.env, "PATH": f"{BIN}{os.pathsep}{cluster.env.get('PATH', '')}"}
    proc = subprocess.run(
        [kubectl, "ambient", "-n", namespace, "sessions", "cancel", "slow"],
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    status = cluster.wait_phase(namespace, "slow", "Failed", timeout=90)["status"]
    assert status["reason"] == "Cancelled"
    body = cluster.session(namespace, "slow")
    assert body["metadata"]["annotations"]["ambient.ai/cancelled-by"]

    missing = ambient(cluster, "-n", namespace, "sessions", "get", "nope", check=False)
    assert missing.returncode == 1
    assert f"Session {namespace}/nope not found" in missing.stderr
    assert "Traceback" not in missing.stderr
