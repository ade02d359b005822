"""Benchmark: what the Session CRD's own rules cost the API server per status write.

Run with ``make bench`` (or alone: ``.venv/bin/python tests/bench/bench_crd_rules.py``).
Prints figures, asserts nothing.

Every status write (the operator's and a runner's) runs the CRD's x-kubernetes-validations,
and the append-only history rules compare every old entry with the new list. This times
that validation alone, as kube-apiserver runs it: ``tests/bench/crd_rules`` is a small Go
program on the control plane version's apiextensions-apiserver (built once, from the Go
module proxy, into ~/.cache/ambient/bin). The write appends one entry to a history of N;
printed: CPU microseconds per write (best of five batches, GC included) and per entry.
The slope is what a long-running Session's writes cost: the API server rebuilds an object
schema's property map on every field read, so each field a rule reads per entry counts.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from support import ROOT, go_harness, say

HARNESS = Path(__file__).resolve().parent / "crd_rules"
CRD = ROOT / "crds" / "ambient.ai_sessions.yaml"
SIZES = {3: 1000, 50: 200, 300: 30, 900: 10}  # history entries: iterations per batch


def entry(seq: int, event: str, data: dict[str, str]) -> dict[str, Any]:
    return {
        "seq": seq,
        "id": f"{seq:08x}-0000-4000-8000-000000000000",
        "timestamp": "2026-12-06T14:41:14Z",
        "event": event,
        "data": data,
    }


def session(history: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "apiVersion": "ambient.ai/v1alpha1",
        "kind": "Session",
        "metadata": {"name": "bench", "namespace": "team", "uid": "u", "generation": 1},
        "spec": {
            "trigger": {"source": "api", "event": "bench", "payload": {"n": "bench"}},
            "framework": {"type": "script", "config": {"command": ["true"]}},
        },
        "status": {
            "phase": "Running",
            "reason": "Running",
            "observedGeneration": 1,
            "attempt": 1,
            "workload": {"jobName": "bench-a1"},
            "history": history,
        },
    }


def write(n: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """A history of n entries (what runners report: tool calls) and the same plus one."""
    data = {"tool": "Bash", "summary": "ran the unit tests: 412 passed"}
    old = [entry(0, "SessionCreated", {"source": "api"})]
    old += [entry(i, "RunnerProgress", data) for i in range(1, n)]
    return session(old), session([*old, entry(n, "RunnerProgress", data)])


def main() -> int:
    binary = go_harness(HARNESS, "crd-rules")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n, iterations in SIZES.items():
            old, new = write(n)
            paths = [Path(tmp) / f"{n}-{which}.json" for which in ("old", "new")]
            for path, body in zip(paths, (old, new), strict=True):
                path.write_text(json.dumps(body))
            say(f"one status write appending to a history of {n}")
            out = subprocess.run(
                [str(binary), str(CRD), *map(str, paths), str(iterations)],
                capture_output=True,
                text=True,
                check=False,
            )
            if out.returncode != 0:
                print(out.stdout, out.stderr, file=sys.stderr)
                return 1
            rows.append((n, float(out.stdout.split()[-1])))
    print()
    print(f"{'history entries':>16} {'CEL us per write':>18} {'us per entry':>13}")
    for n, micros in rows:
        print(f"{n:>16} {micros:>18.1f} {micros / n:>13.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
