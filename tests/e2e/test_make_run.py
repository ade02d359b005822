"""End to end: what a new user sees from `make run` (hack/run.py) on the local control plane:
the example Session Completed, then a signed GitHub delivery whose printed curl command
works when pasted, its Session Completed, and Ctrl-C stopping every component."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def test_make_run_runs_the_whole_product_and_the_printed_delivery_works(cluster):
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "hack" / "run.py")],
        cwd=ROOT,
        env=cluster.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + 300
    try:
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line.rstrip())
            if "the delivery's Session reached Completed" in line:
                break
        output = "\n".join(lines)
        assert "the delivery's Session reached Completed" in output, output
        assert "the example Session reached Completed" in output
        assert "history[0] SessionCreated" in output
        assert re.search(r"fix-flaky-test\s+Completed\s+Succeeded\s+script", output)
        for component in ("store", "admission webhook", "ingress", "operator"):
            assert f"starting the {component}" in output or component in output
        answered = next(x for x in lines if "the ingress answered 202" in x)
        accepted = json.loads(answered.split("202 ", 1)[1])
        session = cluster.session(accepted["namespace"], accepted["session"])
        assert session["status"]["phase"] == "Completed"
        assert session["spec"]["trigger"]["source"] == "github"
        # The printed command, pasted: the same delivery again, answered 200, nothing new.
        command = next(x.strip() for x in lines if x.strip().startswith("curl "))
        pasted = subprocess.run(
            ["bash", "-c", command], capture_output=True, text=True, timeout=60, check=False
        )
        assert pasted.returncode == 0, pasted.stderr
        assert json.loads(pasted.stdout) == accepted
        time.sleep(1)
        assert proc.poll() is None, "everything keeps running after the demo"
    finally:
        proc.send_signal(signal.SIGTERM)
        rest, _ = proc.communicate(timeout=90)
    assert proc.returncode == 0, rest
    for component in ("operator", "ingress", "admission", "store"):
        assert f"stopping the {component}" in rest
    hooks = cluster.kubectl("get", "validatingwebhookconfigurations", "-o", "name").stdout
    assert "ambient-local-run" not in hooks  # unregistered on the way out
