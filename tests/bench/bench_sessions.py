"""Benchmark: 1,000 Sessions through the operator against 1,000 Jobs created directly.

Run with ``make bench``. It prints figures, never asserts on time: the machine is shared
and noisy, so what matters are the ratios measured side by side in one run.

* floor: 1,000 Jobs (the same manifest the operator builds) created directly with the
  same client and the same number of concurrent requests; time until all exist and until
  all are Complete (kwok runs the pods).
* operator: 1,000 Sessions created the same way, with the operator running; time until
  all have Jobs and until all are Completed, and the operator's peak RSS.

Where the time goes: both cores are busy. Against the floor, each Session adds its own
POST, about two status writes (about 3.8 ms of the API server's CPU each in its profile:
the CRD's CEL rules, the JSON patch, schema validation, managedFields), the identity's
three creates, one Event and one pod read, and the operator spends CPU in kopf's watch
handling. The table of requests by kind at the end says which.
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psutil
from support import control_plane, say, server_metrics

from ambient.crds.models import Session
from ambient.operator.sessions import builders
from ambient.operator.settings import OperatorSettings
from ambient.runners import registry

ROOT = Path(__file__).resolve().parents[2]
GROUP, VERSION = "ambient.ai", "v1alpha1"


def session_body(name: str) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Session",
        "metadata": {"name": name},
        "spec": {
            "trigger": {"source": "api", "event": "bench", "payload": {"n": name}},
            "framework": {"type": "script", "config": {"command": ["true"]}},
        },
    }


def equivalent_job(namespace: str, name: str) -> dict[str, Any]:
    """The Job the operator would build for the same Session, without an owner."""
    session = Session.model_validate(
        {**session_body(name), "metadata": {"name": name, "namespace": namespace, "uid": "x"}}
    )
    settings = OperatorSettings()
    runner = registry.resolve(registry.load(), "script")
    job_name = f"{name}-a1"
    context = builders.context_json(builders.runner_context(session, runner, job_name))
    job = builders.runner_job(session, runner, settings, job_name, context)
    del job["metadata"]["ownerReferences"]
    # The floor has no per-Session identity (the operator creates one before each Job);
    # a pod naming a ServiceAccount that does not exist would never be created.
    job["spec"]["template"]["spec"]["serviceAccountName"] = "default"
    return job


def create_all(n: int, workers: int, create: Callable[[int], None]) -> float:
    start = time.monotonic()
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(create, range(n)))
    return time.monotonic() - start


def wait_until(what: str, check: Callable[[], int], n: int, start: float, timeout: float) -> float:
    """Seconds from start until check() reaches n; prints progress every few seconds."""
    last_print = 0.0
    while True:
        done = check()
        now = time.monotonic()
        if done >= n:
            return now - start
        if now - last_print > 5:
            say(f"    {what}: {done}/{n}")
            last_print = now
        if now - start > timeout:
            raise SystemExit(f"{what}: only {done}/{n} after {timeout:.0f}s")
        time.sleep(1.0)


def control_plane_processes(kubeconfig: str) -> dict[str, psutil.Process]:
    """The local control plane's processes, from the pid files beside its kubeconfig."""
    procs = {}
    for pidfile in sorted((Path(kubeconfig).parent / "run").glob("*.pid")):
        try:
            procs[pidfile.stem] = psutil.Process(int(pidfile.read_text()))
        except (ValueError, psutil.Error):
            continue
    return procs


def cpu_seconds(procs: dict[str, psutil.Process]) -> dict[str, float]:
    """CPU time (user + system) each process has used so far."""
    used = {}
    for name, proc in procs.items():
        try:
            times = proc.cpu_times()
        except psutil.Error:
            continue
        used[name] = times.user + times.system
    return used


def spent(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {name: after[name] - before.get(name, 0.0) for name in after}


WRITES = re.compile(
    r"^apiserver_request_total\{(?P<labels>[^}]*)\} (?P<value>[0-9.e+]+)$", re.MULTILINE
)


def request_totals(api: Any) -> list[tuple[dict[str, str], float]]:
    """The API server's own ``apiserver_request_total`` series: labels and count."""
    return [
        (dict(re.findall(r'(\w+)="([^"]*)"', match["labels"])), float(match["value"]))
        for match in WRITES.finditer(server_metrics(api))
    ]


def requests_by_kind(api: Any) -> dict[str, float]:
    """Requests the API server has answered so far, by verb and resource (every code)."""
    counts: dict[str, float] = {}
    for labels, value in request_totals(api):
        if labels.get("verb") == "WATCH":
            continue  # long-lived; their count says nothing about the work
        sub = labels.get("subresource") or ""
        kind = f"{labels.get('verb')} {labels.get('resource')}{'/' + sub if sub else ''}"
        counts[kind] = counts.get(kind, 0.0) + value
    return counts


def session_writes(api: Any) -> dict[str, float]:
    """Status writes to Sessions the API server has answered so far, by verb (PUT, PATCH,
    APPLY; conflicts apart), from its own ``apiserver_request_total`` (every code counted)."""
    counts: dict[str, float] = {}
    for labels, value in request_totals(api):
        if (
            labels.get("group") == GROUP
            and labels.get("resource") == "sessions"
            and labels.get("subresource") == "status"
            and labels.get("verb") in ("PUT", "PATCH", "APPLY", "UPDATE")
        ):
            # Conflicts (409) apart: each is a write the API server did and threw away.
            verb = labels["verb"] + (" 409" if labels.get("code") == "409" else "")
            counts[verb] = counts.get(verb, 0.0) + value
    return counts


class RssSampler(threading.Thread):
    """Peak resident memory of a process, sampled every 100 ms."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.proc = psutil.Process(pid)
        self.samples: list[int] = []
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.is_set():
            try:
                self.samples.append(self.proc.memory_info().rss)
            except psutil.Error:
                return
            time.sleep(0.1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-n", type=int, default=1000, help="Sessions (and Jobs)")
    parser.add_argument("--workers", type=int, default=16, help="concurrent create requests")
    parser.add_argument("--timeout", type=float, default=900)
    args = parser.parse_args()
    n = args.n

    cp = control_plane(args.workers)
    cp.settle()
    env, api, batch, core, custom = cp.env, cp.api, cp.batch, cp.core, cp.custom
    kubeconfig = cp.kubeconfig
    run = uuid.uuid4().hex[:6]
    floor_ns, op_ns = f"bench-floor-{run}", f"bench-op-{run}"
    for ns in (floor_ns, op_ns):
        core.create_namespace({"metadata": {"name": ns}})

    def count(path: str, field_selector: str | None = None) -> int:
        return len(cp.metadata(path, field_selector))

    def jobs_complete(ns: str) -> Callable[[], int]:
        return lambda: count(f"/apis/batch/v1/namespaces/{ns}/jobs", "status.successful=1")

    def jobs_exist(ns: str) -> Callable[[], int]:
        return lambda: count(f"/apis/batch/v1/namespaces/{ns}/jobs")

    components = control_plane_processes(kubeconfig)
    say(f"floor: creating {n} Jobs directly ({args.workers} at a time)")
    cpu_before = cpu_seconds(components)
    requests_before = requests_by_kind(api)
    start = time.monotonic()
    floor_create = create_all(
        n,
        args.workers,
        lambda i: batch.create_namespaced_job(floor_ns, equivalent_job(floor_ns, f"s{i:04d}")),
    )
    floor_done = wait_until("floor Jobs complete", jobs_complete(floor_ns), n, start, args.timeout)
    floor_cpu = spent(cpu_before, cpu_seconds(components))
    floor_requests = spent(requests_before, requests_by_kind(api))
    say(f"floor: {n} Jobs created in {floor_create:.1f}s, all Complete after {floor_done:.1f}s")

    say("operator: starting")
    log = (ROOT / ".run").resolve()
    log.mkdir(exist_ok=True)
    with (log / "bench-operator.log").open("wb") as out:
        operator = subprocess.Popen(
            [sys.executable, "-m", "ambient.operator", "--liveness", ""],
            # Throughput against the floor: no concurrency cap (bench_queue measures it).
            env={
                **env,
                "AMBIENT_NAMESPACES": op_ns,
                "AMBIENT_DEFAULT_MAX_CONCURRENT_SESSIONS": "10000",
            },
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    sampler = RssSampler(operator.pid)
    sampler.start()
    time.sleep(3)  # let it list and watch before the burst
    idle_rss = max(sampler.samples[-5:]) if sampler.samples else 0
    try:
        say(f"operator: creating {n} Sessions ({args.workers} at a time)")
        components["operator"] = sampler.proc
        cpu_before = cpu_seconds(components)
        writes_before = session_writes(api)
        requests_before = requests_by_kind(api)
        start, start_wall = time.monotonic(), time.time()
        op_create = create_all(
            n,
            args.workers,
            lambda i: custom.create_namespaced_custom_object(
                GROUP, VERSION, op_ns, "sessions", session_body(f"s{i:04d}")
            ),
        )
        op_jobs = wait_until("Sessions with Jobs", jobs_exist(op_ns), n, start, args.timeout)

        def sessions_completed() -> int:
            return count(
                f"/apis/{GROUP}/{VERSION}/namespaces/{op_ns}/sessions", "status.phase=Completed"
            )

        op_done = wait_until("Sessions Completed", sessions_completed, n, start, args.timeout)
        op_cpu = spent(cpu_before, cpu_seconds(components))
        writes = spent(writes_before, session_writes(api))
        op_requests = spent(requests_before, requests_by_kind(api))
        # When the cluster had run all their Jobs, read once now (the floor polls one
        # collection, so the operator's side polls one too: its Sessions)
        op_jobs_done = cp.jobs_completed_after(
            f"/apis/batch/v1/namespaces/{op_ns}/jobs", op_ns, start_wall
        )
    finally:
        sampler.stopped.set()
        operator.terminate()
        operator.wait(timeout=30)
    peak = max(sampler.samples) / 2**20
    median = statistics.median(sampler.samples) / 2**20

    print()
    print(f"{'figure':44} {'seconds':>9}")
    print(f"{'floor: create ' + str(n) + ' Jobs directly':44} {floor_create:9.1f}")
    print(f"{'floor: ... until all Jobs Complete':44} {floor_done:9.1f}")
    print(f"{'operator: create ' + str(n) + ' Sessions':44} {op_create:9.1f}")
    print(f"{'operator: ... until all have Jobs':44} {op_jobs:9.1f}")
    if op_jobs_done is not None:  # to the second: how much of the lag is the cluster's
        print(f"{'operator: ... until all their Jobs Complete':44} {op_jobs_done:9.1f}")
    print(f"{'operator: ... until all Completed':44} {op_done:9.1f}")
    print()
    print(f"ratio, all Jobs exist:   {op_jobs / floor_create:5.2f}x the floor (target <= 2x)")
    print(f"ratio, all finished:     {op_done / floor_done:5.2f}x the floor (target <= 1.5x)")
    print(
        f"operator RSS: idle {idle_rss / 2**20:.0f} MiB, median {median:.0f} MiB, "
        f"peak {peak:.0f} MiB (target <= 120 MiB)"
    )
    print()
    print("CPU seconds used, from the first create until all finished:")
    print(f"{'process':26} {'floor':>8} {'operator':>9}")
    for name in sorted(op_cpu, key=lambda k: (k == "operator", k)):
        print(f"{name:26} {floor_cpu.get(name, 0.0):8.1f} {op_cpu[name]:9.1f}")
    apiserver = "kube-apiserver"
    if apiserver in op_cpu:
        floor_ms, op_ms = (1000 * cpu.get(apiserver, 0.0) / n for cpu in (floor_cpu, op_cpu))
        print(
            f"API-server CPU per Session: {op_ms:.1f} ms (floor, per Job: {floor_ms:.1f} ms; "
            f"{op_ms / floor_ms if floor_ms else 0:.2f}x)"
        )
    by_verb = ", ".join(f"{verb} {count / n:.2f}" for verb, count in sorted(writes.items()))
    print(
        f"Session status writes per Session: {sum(writes.values()) / n:.2f} "
        f"({by_verb or 'none'}; the floor writes none; target <= 2.5)"
    )
    print()
    print("API requests per Session (per Job for the floor), the busiest kinds, watches apart:")
    print(f"{'request':40} {'floor':>7} {'operator':>9}")
    kinds = sorted(op_requests, key=lambda k: -op_requests[k])
    for kind in [k for k in kinds if op_requests[k] >= n / 20][:16]:
        print(f"{kind:40} {floor_requests.get(kind, 0.0) / n:7.2f} {op_requests[kind] / n:9.2f}")
    print(
        f"{'all':40} {sum(floor_requests.values()) / n:7.2f} {sum(op_requests.values()) / n:9.2f}"
    )
    say("cleaning up the bench namespaces")
    for ns in (floor_ns, op_ns):
        core.delete_namespace(ns)
    return 0


if __name__ == "__main__":
    sys.exit(main())
