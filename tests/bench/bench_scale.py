"""Benchmark: 10,000 Sessions over 100 namespaces against the same 10,000 Jobs created directly.

Run with ``make bench`` (``--sessions`` and ``--namespaces`` run it smaller). It prints
figures, never asserts on time: the machine is shared, so what matters are the ratios
measured side by side in one run (bench_sessions.py's approach, across many namespaces).

* floor: the Jobs the operator would build, created directly, spread round-robin over the
  namespaces, with the same client and number of concurrent requests; time until all
  exist and until all are Complete (kwok runs the pods). Its namespaces are then deleted,
  and the run waits until they are gone, so the operator's phase does not pay for them.
* operator: one operator watching the whole cluster, and the Sessions created the same
  way; time until all have Jobs and until all are Completed; the operator's RSS at rest,
  at its peak, and as the Sessions it holds grow (sampled each time the count of
  Completed Sessions is read), so the cost of its caches per 1,000 Sessions is printed.

Targets (issue 19): all Jobs exist within 1.5x the floor's time, all Completed within 2x,
operator peak RSS <= 300 MiB at 10,000 Sessions.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from bench_sessions import (
    GROUP,
    VERSION,
    RssSampler,
    control_plane_processes,
    cpu_seconds,
    create_all,
    equivalent_job,
    session_body,
    spent,
)
from support import control_plane, say

ROOT = Path(__file__).resolve().parents[2]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sessions", type=int, default=10_000, help="Sessions (and Jobs)")
    parser.add_argument("--namespaces", type=int, default=100, help="spread over this many")
    parser.add_argument("--workers", type=int, default=16, help="concurrent create requests")
    parser.add_argument("--timeout", type=float, default=0, help="per phase (0: from the size)")
    args = parser.parse_args()
    n, spaces = args.sessions, args.namespaces
    timeout = args.timeout or max(900.0, n * 0.6)
    # A poll lists every Job's metadata: at 10,000 Jobs, one every 2 s kept this process
    # at a third of a core and the API server busier still, so poll less at larger sizes.
    poll = max(1.0, n / 1000)

    cp = control_plane(args.workers)
    cp.settle()
    batch, core, custom = cp.batch, cp.core, cp.custom
    run = uuid.uuid4().hex[:6]
    floor_prefix, op_prefix = f"scale-floor-{run}-", f"scale-op-{run}-"
    floor_ns = [f"{floor_prefix}{i:03d}" for i in range(spaces)]
    op_ns = [f"{op_prefix}{i:03d}" for i in range(spaces)]

    def count(path: str, prefix: str, field_selector: str | None = None) -> int:
        """Objects of a cluster-wide collection in this run's namespaces (metadata only,
        from the watch cache, filtered server-side where a field selector can)."""
        items = cp.metadata(path, field_selector)
        return sum(1 for item in items if item["metadata"]["namespace"].startswith(prefix))

    def wait_until(
        what: str, check: Callable[[], int], start: float, each: Callable[[int], None] | None
    ) -> float:
        last_print = 0.0
        while True:
            done = check()
            now = time.monotonic()
            if each is not None:
                each(done)
            if done >= n:
                return now - start
            if now - last_print > 10:
                say(f"    {what}: {done}/{n}")
                last_print = now
            if now - start > timeout:
                raise SystemExit(f"{what}: only {done}/{n} after {timeout:.0f}s")
            time.sleep(poll)

    alive: set[str] = set()

    def create_namespaces(names: list[str]) -> None:
        for ns in names:
            core.create_namespace({"metadata": {"name": ns}})
            alive.add(ns)

    def delete_and_wait(names: list[str], wait: bool = True) -> None:
        """Delete the namespaces (their Sessions, Jobs and pods with them) and wait,
        bounded, until they are gone: the next phase or benchmark would pay for them."""
        for ns in names:
            if ns in alive:
                try:
                    core.delete_namespace(ns)
                except Exception as exc:
                    say(f"could not delete {ns}: {exc}")
                alive.discard(ns)
        if wait:
            cp.settle(timeout=max(600.0, n * 0.2))

    jobs, completed_jobs = "/apis/batch/v1/jobs", "status.successful=1"
    components = control_plane_processes(cp.kubeconfig)
    operator: subprocess.Popen[bytes] | None = None
    try:
        say(f"floor: {spaces} namespaces, {n} Jobs created directly ({args.workers} at a time)")
        create_namespaces(floor_ns)
        cpu_before = cpu_seconds(components)
        start = time.monotonic()
        floor_create = create_all(
            n,
            args.workers,
            lambda i: batch.create_namespaced_job(
                floor_ns[i % spaces], equivalent_job(floor_ns[i % spaces], f"s{i:05d}")
            ),
        )
        floor_done = wait_until(
            "floor Jobs complete",
            lambda: count(jobs, floor_prefix, completed_jobs),
            start,
            None,
        )
        floor_cpu = spent(cpu_before, cpu_seconds(components))
        say(f"floor: {n} Jobs created in {floor_create:.1f}s, all Complete after {floor_done:.1f}s")
        say("floor: deleting its namespaces, waiting until they are gone")
        delete_and_wait(floor_ns)

        say("operator: starting (whole cluster)")
        create_namespaces(op_ns)
        log = (ROOT / ".run").resolve()
        log.mkdir(exist_ok=True)
        with (log / "bench-scale-operator.log").open("wb") as out:
            operator = subprocess.Popen(
                [sys.executable, "-m", "ambient.operator", "--liveness", ""],
                # Throughput against the floor: no concurrency cap (bench_queue measures it).
                env={**cp.env, "AMBIENT_DEFAULT_MAX_CONCURRENT_SESSIONS": "10000"},
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        sampler = RssSampler(operator.pid)
        sampler.start()
        time.sleep(5)  # let it list and watch before the burst
        idle_rss = max(sampler.samples[-5:]) if sampler.samples else 0
        growth: list[tuple[int, int]] = [(0, idle_rss)]
        components["operator"] = sampler.proc

        def remember(done: int) -> None:
            if sampler.samples:
                growth.append((done, sampler.samples[-1]))

        say(f"operator: creating {n} Sessions ({args.workers} at a time)")
        cpu_before = cpu_seconds(components)
        start, start_wall = time.monotonic(), time.time()
        op_create = create_all(
            n,
            args.workers,
            lambda i: custom.create_namespaced_custom_object(
                GROUP, VERSION, op_ns[i % spaces], "sessions", session_body(f"s{i:05d}")
            ),
        )
        op_jobs = wait_until("Sessions with Jobs", lambda: count(jobs, op_prefix), start, None)
        sessions = f"/apis/{GROUP}/{VERSION}/sessions"

        def sessions_completed() -> int:
            return count(sessions, op_prefix, "status.phase=Completed")

        op_done = wait_until("Sessions Completed", sessions_completed, start, remember)
        op_cpu = spent(cpu_before, cpu_seconds(components))
        # When the cluster had run all their Jobs, read once now (the floor polls one
        # collection, so the operator's side polls one too: its Sessions)
        op_jobs_done = cp.jobs_completed_after(jobs, op_prefix, start_wall)
        time.sleep(10)  # the last writes settle; every Session is still held
        held_rss = statistics.median(sampler.samples[-20:])
        sampler.stopped.set()
    finally:
        if operator is not None:
            operator.terminate()
            operator.wait(timeout=60)
        # A reused control plane (AMBIENT_CLUSTER_DIR) is waited for here; the next bench
        # purges its own (support.control_plane), so waiting for 20,000 objects to go
        # (six minutes at 10,000) would only delay it.
        reused = "AMBIENT_CLUSTER_DIR" in os.environ
        say("cleaning up the bench namespaces" + ("" if reused else " (not waiting)"))
        delete_and_wait(floor_ns + op_ns, wait=reused)

    mib = 2**20
    peak = max(sampler.samples) / mib
    per_thousand = (held_rss - idle_rss) / mib / (n / 1000)
    print()
    print(f"{n} Sessions over {spaces} namespaces, {args.workers} concurrent creates")
    print(f"{'figure':46} {'seconds':>9}")
    print(f"{'floor: create ' + str(n) + ' Jobs directly':46} {floor_create:9.1f}")
    print(f"{'floor: ... until all Jobs Complete':46} {floor_done:9.1f}")
    print(f"{'operator: create ' + str(n) + ' Sessions':46} {op_create:9.1f}")
    print(f"{'operator: ... until all have Jobs':46} {op_jobs:9.1f}")
    if op_jobs_done is not None:  # to the second: how much of the lag is the cluster's
        print(f"{'operator: ... until all their Jobs Complete':46} {op_jobs_done:9.1f}")
    print(f"{'operator: ... until all Completed':46} {op_done:9.1f}")
    print()
    print(f"ratio, all Jobs exist:   {op_jobs / floor_create:5.2f}x the floor (target <= 1.5x)")
    print(f"ratio, all finished:     {op_done / floor_done:5.2f}x the floor (target <= 2x)")
    print(
        f"operator RSS: idle {idle_rss / mib:.0f} MiB, peak {peak:.0f} MiB (target <= 300 MiB), "
        f"holding all {n} Sessions {held_rss / mib:.0f} MiB"
    )
    print(f"operator RSS per 1,000 Sessions held: {per_thousand:.1f} MiB")
    print("operator RSS as Sessions completed (Completed: MiB):")
    marks = [n * k // 10 for k in range(11)]
    shown = []
    for mark in marks:
        done, rss = min(growth, key=lambda point: abs(point[0] - mark))
        shown.append(f"{done}: {rss / mib:.0f}")
    print("  " + ", ".join(dict.fromkeys(shown)))
    print()
    print("CPU seconds used, from the first create until all finished:")
    print(f"{'process':26} {'floor':>8} {'operator':>9}")
    for name in sorted(op_cpu, key=lambda k: (k == "operator", k)):
        print(f"{name:26} {floor_cpu.get(name, 0.0):8.1f} {op_cpu[name]:9.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
