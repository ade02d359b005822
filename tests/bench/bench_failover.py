"""Benchmark: SIGKILL the active operator in the middle of a burst of 1,000 Sessions.

Run with ``make bench``. Two operator replicas elect a leader through a Lease
(``AMBIENT_LEADER_ELECTION``, the chart's default of 2 replicas); once the leader has
created a quarter of the Jobs it is killed without any clean-up, as a crash or an OOM kill
would. Printed, never asserted:

* takeover: seconds from the SIGKILL until the standby holds the Lease (target <= 15 s),
  and as a ratio of the Lease's own bound (term + one look: 10 s + 2 s by default), so the
  figure reads the same on any machine; also until the standby's first new Job;
* Sessions, Jobs, Sessions with more than one Job (target 0), Sessions with a repeated
  history entry id or a second WorkloadCreated entry (target 0), once every Session is
  Completed.

``test_operator_failover.py`` checks the same with 80 Sessions; this is the full burst.
"""

from __future__ import annotations

import argparse
import collections
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench_sessions import GROUP, VERSION, session_body
from kubernetes import client
from support import control_plane, say

ROOT = Path(__file__).resolve().parents[2]
LEASE_BOUND_SECONDS = 10 + 2  # lease.Timing's defaults: the term plus one look


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-n", type=int, default=1000, help="Sessions in the burst")
    parser.add_argument("--workers", type=int, default=16, help="concurrent create requests")
    parser.add_argument(
        "--kill-at", type=float, default=0.25, help="kill once this share of Jobs exists"
    )
    parser.add_argument("--timeout", type=float, default=900)
    args = parser.parse_args()
    n = args.n

    cp = control_plane(args.workers)
    cp.settle()
    coordination = client.CoordinationV1Api(cp.api)
    run = uuid.uuid4().hex[:6]
    ns, lease = f"bench-failover-{run}", f"ambient-operator-{run}"
    cp.core.create_namespace({"metadata": {"name": ns}})

    def count(path: str, field_selector: str | None = None) -> int:
        return len(cp.metadata(path, field_selector))

    def jobs() -> int:
        return count(f"/apis/batch/v1/namespaces/{ns}/jobs")

    def completed() -> int:
        return count(f"/apis/{GROUP}/{VERSION}/namespaces/{ns}/sessions", "status.phase=Completed")

    def holder() -> str:
        try:
            return coordination.read_namespaced_lease(lease, ns).spec.holder_identity or ""
        except client.ApiException:
            return ""

    logs = (ROOT / ".run").resolve()
    logs.mkdir(exist_ok=True)
    replicas: dict[str, subprocess.Popen[bytes]] = {}
    for name in ("a", "b"):
        with (logs / f"bench-failover-{name}.log").open("wb") as out:
            replicas[name] = subprocess.Popen(
                [sys.executable, "-m", "ambient.operator", "--liveness", ""],
                env={
                    **cp.env,
                    "HOSTNAME": f"replica-{name}",
                    "AMBIENT_LEADER_ELECTION": "true",
                    "AMBIENT_LEADER_ELECTION_NAMESPACE": ns,
                    "AMBIENT_LEADER_ELECTION_LEASE": lease,
                    "AMBIENT_NAMESPACES": ns,
                    "AMBIENT_METRICS_PORT": "0",
                    # Throughput, not the concurrency cap (bench_queue measures that).
                    "AMBIENT_DEFAULT_MAX_CONCURRENT_SESSIONS": "10000",
                },
                stdout=out,
                stderr=subprocess.STDOUT,
            )
    try:
        # Two Python start-ups on a loaded machine can take minutes.
        deadline = time.monotonic() + 300
        while not (first := holder()):
            if time.monotonic() > deadline:
                raise SystemExit("no leader after 300s")
            time.sleep(0.2)
        leader = first.split("-")[1]
        standby = "b" if leader == "a" else "a"
        say(f"replica {leader} leads ({first}); creating {n} Sessions ({args.workers} at a time)")

        def create(i: int) -> None:
            cp.custom.create_namespaced_custom_object(
                GROUP, VERSION, ns, "sessions", session_body(f"s{i:04d}")
            )

        start = time.monotonic()
        creating = threading.Thread(
            target=lambda: list(ThreadPoolExecutor(args.workers).map(create, range(n))),
            daemon=True,
        )
        creating.start()
        while (made := jobs()) < n * args.kill_at:
            if time.monotonic() - start > args.timeout:
                raise SystemExit(f"only {made} Jobs after {args.timeout:.0f}s")
            time.sleep(0.2)
        replicas[leader].kill()  # SIGKILL
        killed_at = time.monotonic()
        replicas[leader].wait(timeout=30)
        at_kill = jobs()
        say(f"SIGKILL replica {leader} with {at_kill} Jobs made ({killed_at - start:.1f}s in)")
        while (second := holder()) in ("", first):
            if time.monotonic() - killed_at > 120:
                raise SystemExit("no takeover after 120s")
            time.sleep(0.1)
        takeover = time.monotonic() - killed_at
        while jobs() <= at_kill and time.monotonic() - killed_at < args.timeout:
            time.sleep(0.1)
        first_job = time.monotonic() - killed_at
        creating.join(timeout=args.timeout)
        say(f"replica {standby} took over ({second}) after {takeover:.1f}s")
        last = 0.0
        # On a loaded machine completion may outlast the timeout: the figures are still
        # printed (a second Job or a repeated entry shows as soon as it exists).
        while (done := completed()) < n and time.monotonic() - start < args.timeout:
            if time.monotonic() - last > 10:
                say(f"    Sessions Completed: {done}/{n}")
                last = time.monotonic()
            time.sleep(1)
        all_done = time.monotonic() - start
    finally:
        for proc in replicas.values():
            if proc.poll() is None:
                proc.terminate()
                proc.wait(timeout=30)

    per_session = collections.Counter(
        j.metadata.labels.get("ambient.ai/session", "")
        for j in cp.batch.list_namespaced_job(ns, label_selector="ambient.ai/session").items
    )
    sessions = cp.custom.list_namespaced_custom_object(GROUP, VERSION, ns, "sessions")["items"]
    repeated_ids = repeated_created = 0
    for item in sessions:
        history = item.get("status", {}).get("history") or []
        ids = [e["id"] for e in history]
        repeated_ids += len(ids) != len(set(ids))
        repeated_created += sum(e["event"] == "WorkloadCreated" for e in history) > 1

    print()
    print(f"{'figure':58} {'value':>8}")
    print(f"{'takeover: SIGKILL until the standby holds the Lease (s)':58} {takeover:8.1f}")
    print(f"{'  ... as a share of the Lease bound (10 s term + 2 s look)':58} "
          f"{takeover / LEASE_BOUND_SECONDS:7.2f}x")  # fmt: skip
    print(f"{'SIGKILL until the standby creates its first Job (s)':58} {first_job:8.1f}")
    print(f"{'Jobs made by the leader before the kill':58} {at_kill:8d}")
    print(f"{'Sessions Completed':58} {done:8d}")
    print(f"{'first create until then (s)':58} {all_done:8.1f}")
    print(f"{'Sessions':58} {len(sessions):8d}")
    print(f"{'Jobs':58} {sum(per_session.values()):8d}")
    print(f"{'Sessions with more than one Job (target 0)':58} "
          f"{sum(c > 1 for c in per_session.values()):8d}")  # fmt: skip
    print(f"{'Sessions with a repeated history id (target 0)':58} {repeated_ids:8d}")
    print(f"{'Sessions with two WorkloadCreated entries (target 0)':58} {repeated_created:8d}")
    print(f"takeover within 15 s: {'yes' if takeover <= 15 else 'NO'}")
    say("cleaning up the bench namespace")
    cp.core.delete_namespace(ns)
    return 0


if __name__ == "__main__":
    sys.exit(main())
