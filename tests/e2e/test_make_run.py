"""End to end: what a new user sees from `make run` (hack/run.py) on the local control plane."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def test_make_run_shows_the_example_session_complete_and_keeps_running(cluster):
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
    deadline = time.monotonic() + 240
    try:
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line.rstrip())
            if "reached Completed" in line:
                break
        output = "\n".join(lines)
        assert "reached Completed" in output, output
        assert "history[0] SessionCreated" in output
        assert "WorkloadSucceeded" in output
        assert "fix-flaky-test   Completed   Succeeded   script" in output
        time.sleep(1)
        assert proc.poll() is None, "the operator should keep running after the example"
    finally:
        proc.send_signal(signal.SIGTERM)
        rest, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, rest
    assert "stopping the operator" in rest
