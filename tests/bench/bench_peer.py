"""Benchmark: ours and a peer side by side on the same signed GitHub pull_request deliveries.

Run with ``make bench`` (or alone, as root: ``.venv/bin/python tests/bench/bench_peer.py``).
Prints figures; asserts nothing (the machine is shared).

* ours: ``python -m ambient.webhooks.ingress`` and ``python -m ambient.operator`` (the real
  processes, started as bench_ingress.py starts them): delivery -> Session -> runner Job
  (with its ServiceAccount, Role and RoleBinding, and the Session's status and history).
* the peer: Argo Events (argo_peer.py): its GitHub webhook EventSource -> a JetStream
  EventBus (nats-server) -> a Sensor whose Kubernetes trigger creates the same runner Job
  (the one our operator created for a warm-up delivery, renamed per delivery). Nothing
  else: no Session, no per-Session RBAC, no status.

Both run all along on the same local control plane; the phases take turns (ours then the
peer, then the peer then ours, ...), each side idle while the other is measured:

* delivery -> Job at 5/s and 20/s (open loop, ``--seconds`` each): from sending a delivery
  to its Job appearing in a watch; p50 and p99.
* throughput, 100 in flight (closed loop, ``-n`` deliveries): acknowledgements/s and Jobs/s
  (from the first send until the last Job exists).
* CPU per delivery: user + system seconds of each side's processes (ingress + operator;
  eventsource + sensor + nats), and of the API server and etcd while that side ran.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from argo_peer import ArgoEvents
from bench_ingress import (
    FRAMEWORK,
    PAYLOAD,
    body_of,
    closed_loop,
    open_loop,
    session_of,
    tenant,
    wait_ready,
)
from bench_ingress import headers as our_headers
from kubernetes import watch
from support import ROOT, ControlPlane, CpuMeter, control_plane, free_port, pct, say, start_ingress

assert FRAMEWORK and PAYLOAD  # the same deliveries as bench_ingress.py's


class JobWatch:
    """When each Job of a namespace was first seen (monotonic clock), from a watch."""

    def __init__(self, cp: ControlPlane, ns: str) -> None:
        self.seen: dict[str, float] = {}
        self._stop = threading.Event()

        def run() -> None:
            while not self._stop.is_set():  # watches end: list and watch again
                w = watch.Watch()
                try:
                    for ev in w.stream(cp.batch.list_namespaced_job, ns, timeout_seconds=10):
                        self.seen.setdefault(ev["object"].metadata.name, time.monotonic())
                        if self._stop.is_set():
                            break
                except Exception as exc:
                    why = getattr(exc, "status", None) or type(exc).__name__
                    say(f"Job watch in {ns} ended ({why}); watching again")
                finally:
                    w.stop()

        threading.Thread(target=run, daemon=True).start()

    def wait(self, names: list[str], timeout: float = 180) -> float:
        """Until every named Job was seen (bounded); the monotonic time it ended."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not all(n in self.seen for n in names):
            time.sleep(0.1)
        return time.monotonic()

    def stop(self) -> None:
        self._stop.set()


@dataclass
class Side:
    """One side of the comparison and its figures (per phase, one value per round)."""

    label: str
    url: str
    """Where a delivery is posted."""
    sign: Callable[[str], dict[str, str]]
    """A delivery's headers, signed with this side's secret."""
    job_of: Callable[[str], str]
    """The name of the Job a delivery becomes."""
    jobs: JobWatch
    pids: dict[str, int]
    """This side's processes, whose CPU is counted."""
    figures: dict[str, list[float]] = field(default_factory=dict)

    def add(self, key: str, value: float) -> None:
        self.figures.setdefault(key, []).append(value)


def argo_headers(secret: str) -> Callable[[str], dict[str, str]]:
    def sign(delivery: str) -> dict[str, str]:
        body = body_of(delivery)
        mac = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        return {
            "Content-Type": "application/json",
            "X-GitHub-Event": "pull_request",
            "X-GitHub-Delivery": delivery,
            "X-Hub-Signature-256": "sha256=" + mac,
        }

    return sign


def send(side: Side, ids: list[str], rate: float | None, conc: int) -> Any:
    """Open loop at ``rate``/s, or closed loop with ``conc`` in flight if rate is None."""
    if rate is None:
        return asyncio.run(closed_loop(side.url, ids, conc, side.sign))
    return asyncio.run(open_loop(side.url, ids, rate, conc, side.sign))


def measure(
    cp: ControlPlane, side: Side, key: str, *, n: int, rate: float | None, conc: int
) -> None:
    control = {"api": cp.pid("kube-apiserver"), "etcd": cp.pid("etcd")}
    ids = [str(uuid.uuid4()) for _ in range(n)]
    meter = CpuMeter(**side.pids, **control)
    start = time.monotonic()
    result = send(side, ids, rate, conc)
    names = [side.job_of(d) for d in ids]
    end = side.jobs.wait(names)
    used = meter.stop()
    got = [n_ for n_ in names if n_ in side.jobs.seen]
    if len(got) < n or set(result.codes) - {200, 202}:
        say(f"{side.label} {key}: {len(got)}/{n} Jobs, status codes {result.codes}")
    side.add(f"{key} jobs", len(got) / n)
    if rate is None:
        side.add(f"{key} acks/s", n / result.elapsed)
        side.add(f"{key} jobs/s", len(got) / (end - start))
        side.add(f"{key} ack p99", pct(result.ack_ms(), 0.99))
    else:
        seen = side.jobs.seen
        lat = [
            (seen[side.job_of(d)] - result.times[d][0]) * 1000
            for d in ids
            if side.job_of(d) in seen
        ]
        if lat:
            side.add(f"{key} p50", statistics.median(lat))
            side.add(f"{key} p99", pct(lat, 0.99))
    own = sum(v for k, v in used.items() if k in side.pids)
    side.add(f"{key} cpu", own / n * 1000)
    side.add(f"{key} cpu api", used.get("api", 0.0) / n * 1000)
    side.add(f"{key} cpu etcd", used.get("etcd", 0.0) / n * 1000)


def job_template(cp: ControlPlane, ns: str, name: str, peer_ns: str, sa: str) -> dict[str, Any]:
    """The Job our operator created, as a template for the Sensor's trigger: named ``pr-``
    (the delivery id is appended), in the peer's namespace, run as ``sa`` there, without
    what the API server and the Job controller add (uid, selector, controller-uid labels)
    and without the owner (there is no Session on the peer's side)."""
    rsp = cp.batch.read_namespaced_job(name, ns, _preload_content=False)
    job = json.loads(rsp.data)
    added = {"controller-uid", "batch.kubernetes.io/controller-uid", "job-name"}
    added.add("batch.kubernetes.io/job-name")
    meta = job["metadata"]
    job["metadata"] = {"name": "pr-", "namespace": peer_ns, "labels": meta.get("labels", {})}
    spec = job["spec"]
    spec.pop("selector", None)
    tmpl = spec["template"]
    tmpl["metadata"]["labels"] = {
        k: v for k, v in tmpl["metadata"].get("labels", {}).items() if k not in added
    }
    tmpl["spec"]["serviceAccountName"] = sa
    job.pop("status", None)
    return dict(job)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-n", type=int, default=600, help="closed-loop deliveries per round")
    parser.add_argument("--rounds", type=int, default=2, help="turns of each phase (ABBA)")
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=10.0, help="open loop: per rate")
    parser.add_argument(
        "--rates",
        type=lambda v: [float(x) for x in v.split(",")],
        default=[5.0, 20.0],
        help="open-loop deliveries/s, comma-separated",
    )
    args = parser.parse_args()
    conc = args.concurrency

    cp = control_plane(conc)
    cp.settle()
    run = uuid.uuid4().hex[:6]
    ours_ns, peer_ns = f"bench-peer-ours-{run}", f"bench-peer-argo-{run}"
    key = tenant(cp, ours_ns, cap=10_000)
    cp.core.create_namespace({"metadata": {"name": peer_ns}})
    cp.core.create_namespaced_service_account(peer_ns, {"metadata": {"name": "runner"}})
    log_dir = (ROOT / ".run").resolve()
    log_dir.mkdir(exist_ok=True)
    port = free_port()
    procs: list[subprocess.Popen[bytes]] = []
    peer: ArgoEvents | None = None
    watches: list[JobWatch] = []
    try:
        say("ours: starting the ingress and the operator")
        with (log_dir / "bench-peer-ingress.log").open("wb") as out:
            unlimited = {"RATE_PER_SECOND": "100000", "RATE_BURST": "100000"}
            ingress = start_ingress(cp.env, port, out, **unlimited)
        procs.append(ingress)
        with (log_dir / "bench-peer-operator.log").open("wb") as out:
            operator = subprocess.Popen(
                [sys.executable, "-m", "ambient.operator", "--liveness", ""],
                env={
                    **cp.env,
                    "AMBIENT_NAMESPACES": ours_ns,
                    "AMBIENT_DEFAULT_MAX_CONCURRENT_SESSIONS": "10000",
                },
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
            )
        procs.append(operator)
        url = f"http://127.0.0.1:{port}"
        wait_ready(url, key)
        ours_jobs = JobWatch(cp, ours_ns)
        watches.append(ours_jobs)
        ours = Side(
            "ours",
            f"{url}/webhooks/github/{key}",
            our_headers,
            lambda d: f"{session_of(d)}-a1",
            ours_jobs,
            {"ingress": ingress.pid, "operator": operator.pid},
        )
        # Warm-up: the first Job ours creates is the template the peer's Sensor creates.
        warm = [str(uuid.uuid4()) for _ in range(20)]
        send(ours, warm, None, conc)
        ours_jobs.wait([ours.job_of(d) for d in warm], timeout=120)
        if ours.job_of(warm[0]) not in ours_jobs.seen:
            raise SystemExit("ours: the warm-up deliveries made no Job; see .run/bench-peer-*.log")
        job = job_template(cp, ours_ns, ours.job_of(warm[0]), peer_ns, "runner")

        say("peer: building (cached) and starting Argo Events and its EventBus")
        peer_dir = log_dir / f"bench-peer-argo-{run}"
        with (log_dir / "bench-peer-argo.log").open("wb") as out:
            peer = ArgoEvents(cp, peer_ns, job, peer_dir, out)
        peer_jobs = JobWatch(cp, peer_ns)
        watches.append(peer_jobs)
        theirs = Side(
            "argo-events",
            peer.url,
            argo_headers(peer.secret),
            lambda d: f"pr-{d}",
            peer_jobs,
            peer.pids(),
        )
        # The Sensor's consumer takes only events published after it subscribed (Argo's
        # DeliverNew): one delivery a second until one becomes a Job, then the warm-up.
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            probe = str(uuid.uuid4())
            send(theirs, [probe], None, 1)
            peer_jobs.wait([theirs.job_of(probe)], timeout=1)
            if theirs.job_of(probe) in peer_jobs.seen:
                break
        send(theirs, warm, None, conc)
        peer_jobs.wait([theirs.job_of(d) for d in warm], timeout=120)
        if theirs.job_of(warm[0]) not in peer_jobs.seen:
            raise SystemExit("argo-events: the warm-up made no Job; see .run/bench-peer-argo.log")

        phases: list[tuple[str, int, float | None]] = [
            (f"{r:g}/s", int(r * args.seconds), r) for r in args.rates
        ]
        phases.append((f"{conc} in flight", args.n, None))
        turn = 0
        for r in range(args.rounds):
            for label, count, rate in phases:
                order = (ours, theirs) if turn % 2 == 0 else (theirs, ours)
                turn += 1
                for side in order:
                    say(f"round {r + 1}, {label}: {side.label}, {count} deliveries")
                    measure(cp, side, label, n=count, rate=rate, conc=conc)
                    time.sleep(3)  # Jobs completing under kwok settle before the next turn
    finally:
        for w in watches:
            w.stop()
        if peer is not None:
            peer.close()
        for p in procs:
            p.terminate()
            p.wait(timeout=30)

    print()
    title = f"figure (median of {args.rounds} rounds)"
    sides = (ours, theirs)
    print(f"{title:58} {'ours':>12} {'argo-events':>12} {'argo/ours':>10}")

    def line(label: str, key: str, fmt: str = "{:.1f}") -> None:
        meds = [statistics.median(s.figures[key]) if key in s.figures else None for s in sides]
        vals = [fmt.format(m) if m is not None else "-" for m in meds]
        ratio = f"{meds[1] / meds[0]:.2f}x" if meds[0] and meds[1] is not None else "-"
        print(f"{label:58} {vals[0]:>12} {vals[1]:>12} {ratio:>10}")

    for label, _, rate in phases:
        line(f"{label}: Jobs created (fraction of deliveries)", f"{label} jobs", "{:.2f}")
        if rate is None:
            line(f"{label}: acknowledgements/s", f"{label} acks/s")
            line(f"{label}: ack p99 (ms)", f"{label} ack p99")
            line(f"{label}: Jobs/s (first send to last Job)", f"{label} jobs/s")
        else:
            line(f"delivery -> Job at {label}: p50 (ms)", f"{label} p50")
            line(f"delivery -> Job at {label}: p99 (ms)", f"{label} p99")
        line(f"{label}: CPU ms per delivery, the side's processes", f"{label} cpu", "{:.2f}")
        line(f"{label}: CPU ms per delivery, API server", f"{label} cpu api", "{:.2f}")
        line(f"{label}: CPU ms per delivery, etcd", f"{label} cpu etcd", "{:.2f}")
    print("processes: ours = ingress + operator; argo-events = eventsource + sensor + nats-server")
    for ns in (ours_ns, peer_ns):
        cp.core.delete_namespace(ns)
    return 0


if __name__ == "__main__":
    sys.exit(main())
