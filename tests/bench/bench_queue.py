"""Benchmark: the concurrency cap's queue against the same Sessions uncapped, in one run.

Run with ``make bench``. It prints figures, never asserts on time (the machine is shared).

* uncapped: N Sessions in a namespace whose NamespacePolicy allows N at once.
* capped: N Sessions in a namespace with a cap of 50 (the default), so most wait Queued
  and are admitted as others finish.

For each, a watch on the namespace's Jobs records when each Job appears (an admission)
and when each finishes. Printed: admissions per second, time until all Completed, and for
the capped run the delay from a Job finishing to the next admission (the queue's
hand-over latency), with medians and the capped/uncapped ratios.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from kubernetes import client, watch
from support import control_plane, say

ROOT = Path(__file__).resolve().parents[2]
GROUP, VERSION = "ambient.ai", "v1alpha1"


def session_body(name: str, duration: str) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Session",
        "metadata": {"name": name, "annotations": {"sim.ambient.ai/duration": duration}},
        "spec": {
            "trigger": {"source": "api", "event": "bench", "payload": {"n": name}},
            "framework": {"type": "script", "config": {"command": ["true"]}},
        },
    }


class JobTimeline(threading.Thread):
    """When each Job of a namespace appeared and finished (monotonic seconds)."""

    def __init__(self, batch: client.BatchV1Api, namespace: str) -> None:
        super().__init__(daemon=True)
        self.batch = batch
        self.namespace = namespace
        self.added: dict[str, float] = {}
        self.finished: dict[str, float] = {}
        self.peak = 0
        self.stopped = threading.Event()

    def run(self) -> None:
        rv = None
        while not self.stopped.is_set():
            w = watch.Watch()
            try:
                kwargs: dict[str, Any] = {"timeout_seconds": 5}
                if rv:
                    kwargs["resource_version"] = rv
                for event in w.stream(self.batch.list_namespaced_job, self.namespace, **kwargs):
                    job = event["object"]
                    rv = job.metadata.resource_version
                    now = time.monotonic()
                    name = job.metadata.name
                    self.added.setdefault(name, now)
                    done = any(
                        c.type in ("Complete", "Failed") and c.status == "True"
                        for c in job.status.conditions or []
                    )
                    if done:
                        self.finished.setdefault(name, now)
                    self.peak = max(self.peak, len(self.added) - len(self.finished))
            except Exception:
                rv = None
            finally:
                w.stop()


def run_one(
    custom: client.CustomObjectsApi,
    batch: client.BatchV1Api,
    namespace: str,
    n: int,
    *,
    duration: str,
    timeout: float,
) -> dict[str, Any]:
    timeline = JobTimeline(batch, namespace)
    timeline.start()
    time.sleep(1)
    start = time.monotonic()
    with ThreadPoolExecutor(16) as pool:
        list(
            pool.map(
                lambda i: custom.create_namespaced_custom_object(
                    GROUP, VERSION, namespace, "sessions", session_body(f"s{i:04d}", duration)
                ),
                range(n),
            )
        )
    last = 0.0
    while len(timeline.finished) < n:
        now = time.monotonic()
        if now - start > timeout:
            raise SystemExit(f"{namespace}: only {len(timeline.finished)}/{n} finished")
        if now - last > 10:
            say(f"    {namespace}: {len(timeline.added)} admitted, {len(timeline.finished)} done")
            last = now
        time.sleep(0.5)
    total = time.monotonic() - start
    timeline.stopped.set()
    adds = sorted(timeline.added.values())
    span = max(adds[-1] - adds[0], 1e-6)
    # Hand-over: for each finish while others still waited, the delay to the next admission.
    handover = []
    for done in sorted(timeline.finished.values()):
        nxt = next((a for a in adds if a >= done), None)
        if nxt is not None:
            handover.append(nxt - done)
    return {
        "total": total,
        "rate": (n - 1) / span,
        "peak": timeline.peak,
        "handover": statistics.median(handover) if handover else 0.0,
        "handover_n": len(handover),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-n", type=int, default=500, help="Sessions per run")
    parser.add_argument("--cap", type=int, default=50)
    parser.add_argument("--duration", default="2s", help="how long each runner pod runs")
    parser.add_argument("--timeout", type=float, default=900)
    args = parser.parse_args()

    cp = control_plane(16)
    env, batch, core, custom = cp.env, cp.batch, cp.core, cp.custom
    run = uuid.uuid4().hex[:6]
    spaces = {
        "uncapped": (f"bench-uncapped-{run}", args.n),
        "capped": (f"bench-capped-{run}", args.cap),
    }
    for ns, cap in spaces.values():
        core.create_namespace({"metadata": {"name": ns}})
        custom.create_namespaced_custom_object(
            GROUP,
            VERSION,
            ns,
            "namespacepolicies",
            {
                "apiVersion": f"{GROUP}/{VERSION}",
                "kind": "NamespacePolicy",
                "metadata": {"name": "policy"},
                "spec": {"maxConcurrentSessions": cap},
            },
        )
    log = (ROOT / ".run").resolve()
    log.mkdir(exist_ok=True)
    with (log / "bench-queue-operator.log").open("wb") as out:
        operator = subprocess.Popen(
            [sys.executable, "-m", "ambient.operator", "--liveness", ""],
            env={**env, "AMBIENT_NAMESPACES": ",".join(ns for ns, _ in spaces.values())},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    time.sleep(3)
    results: dict[str, dict[str, Any]] = {}
    try:
        for label, (ns, cap) in spaces.items():
            say(f"{label}: {args.n} Sessions, cap {cap}, each runs {args.duration}")
            results[label] = run_one(
                custom, batch, ns, args.n, duration=args.duration, timeout=args.timeout
            )
    finally:
        operator.terminate()
        operator.wait(timeout=30)

    u, c = results["uncapped"], results["capped"]
    print()
    print(f"{'figure':44} {'uncapped':>10} {'capped':>10}")
    print(f"{'Sessions until all Completed (s)':44} {u['total']:10.1f} {c['total']:10.1f}")
    print(f"{'admissions per second':44} {u['rate']:10.1f} {c['rate']:10.1f}")
    print(f"{'most Jobs unfinished at once':44} {u['peak']:10d} {c['peak']:10d}")
    print(
        f"{'median finish -> next admission (s)':44} {'':>10} {c['handover']:10.2f}"
        f"  (over {c['handover_n']} finishes)"
    )
    print()
    print(f"ratio, admissions per second capped/uncapped: {c['rate'] / u['rate']:5.2f}")
    print(f"ratio, time to all Completed capped/uncapped: {c['total'] / u['total']:5.2f}")
    say("cleaning up the bench namespaces")
    for ns, _ in spaces.values():
        core.delete_namespace(ns)
    return 0


if __name__ == "__main__":
    sys.exit(main())
