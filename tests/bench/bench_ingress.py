"""Benchmark: signed GitHub pull_request deliveries through the ingress, against the floor.

Run with ``make bench`` (or alone: ``.venv/bin/python tests/bench/bench_ingress.py``).
Prints figures with their targets beside them; asserts nothing (the machine is shared).

* floor: the Session manifests the ingress builds, created directly at the same
  concurrency (100) with the client the ingress itself uses (aiohttp, one pool, warm
  connections), in rounds alternating with the ingress's (ABBA order); the ratio is the
  median of the rounds' ratios. Once, for reference: the kubernetes client in 100
  threads. CPU per Session is read from the API server's and etcd's processes, and the
  ingress's: figures that the rest of a shared machine's load does not inflate the way
  it does latency.
* ingress, closed loop: N signed deliveries, 100 always in flight, against
  ``python -m ambient.webhooks.ingress`` (the real process: uvicorn, httptools, uvloop)
  backed by the local API server: Sessions/s, p50/p99 acknowledgement latency, the ratio
  to the floor. With 100 always in flight, latency is 100 / throughput (Little's law).
* ingress, open loop: deliveries arriving at a fixed rate (50/s, the throughput target)
  on up to 100 connections, latency measured from each delivery's scheduled time (so a
  backlog counts against it): what a sender sees at that load.
* delivery -> Job: with the operator running, deliveries at a steady rate (5/s, then
  20/s, 10 s each); the time from sending a delivery to its runner Job appearing in a
  watch.

Targets (issue 4): p99 ack <= 250 ms; >= 50 Sessions/s; >= 0.7x the floor; delivery ->
Job p99 <= 2 s. ``--profile DIR`` also records py-spy samples (collapsed stacks) of the
ingress in the closed loop and of the operator while it turns deliveries into Jobs.
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
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import aiohttp
from kubernetes import watch
from support import (
    ROOT,
    ControlPlane,
    CpuMeter,
    control_plane,
    free_port,
    github_tenant,
    pct,
    py_spy,
    say,
    start_ingress,
)

from ambient.common.kube import config as kube_config
from ambient.crds.models import SessionDefaults
from ambient.webhooks.ingress import events
from ambient.webhooks.ingress.sessions_api import AsyncSessionsApi

PAYLOAD = json.loads((ROOT / "tests/fixtures/github/pull_request.opened.json").read_text())
SECRET = "bench-signing-secret"


def body_of(delivery: str) -> bytes:
    """One event per delivery: GitHub Sessions are named by the body (issue 17, finding 5),
    so each delivery carries a body of its own, as real events do."""
    return json.dumps({**PAYLOAD, "bench_delivery": delivery}).encode()


FRAMEWORK = {"type": "script", "config": {"command": ["true"]}}


def tenant(cp: ControlPlane, ns: str, cap: int = 50) -> str:
    """A new namespace whose NamespacePolicy takes GitHub deliveries signed with SECRET and
    runs at most ``cap`` Sessions at once."""
    cp.core.create_namespace({"metadata": {"name": ns}})
    return github_tenant(cp.core, cp.custom, ns, SECRET, FRAMEWORK, cap=cap)


def session_of(delivery: str) -> str:
    return events.body_session_name("github", hashlib.sha256(body_of(delivery)).hexdigest())


def headers(delivery: str) -> dict[str, str]:
    signature = hmac.new(SECRET.encode(), body_of(delivery), hashlib.sha256).hexdigest()
    return {
        "Content-Type": "application/json",
        "X-GitHub-Event": "pull_request",
        "X-GitHub-Delivery": delivery,
        "X-Hub-Signature-256": "sha256=" + signature,
    }


Sign = Callable[[str], dict[str, str]]


class Result:
    """Per delivery: when it was sent (or scheduled) and acknowledged; status counts."""

    def __init__(self) -> None:
        self.times: dict[str, tuple[float, float]] = {}
        self.codes: dict[int, int] = {}
        self.elapsed = 0.0

    def ack_ms(self) -> list[float]:
        return [(b - a) * 1000 for a, b in self.times.values()]

    def rate(self) -> float:
        return self.codes.get(202, 0) / self.elapsed


async def _post(
    http: aiohttp.ClientSession, url: str, delivery: str, result: Result, sign: Sign = headers
) -> None:
    async with http.post(url, data=body_of(delivery), headers=sign(delivery)) as rsp:
        await rsp.read()
        result.codes[rsp.status] = result.codes.get(rsp.status, 0) + 1


async def closed_loop(url: str, ids: list[str], concurrency: int, sign: Sign = headers) -> Result:
    """``concurrency`` deliveries always in flight (aiohttp: a light load generator, so
    the figures are the ingress's more than the client's); ``sign`` gives each delivery's
    headers (bench_peer.py signs for its peer too)."""
    result = Result()
    pending = iter(ids)
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as http:

        async def worker() -> None:
            for delivery in pending:
                sent = time.monotonic()
                await _post(http, url, delivery, result, sign)
                result.times[delivery] = (sent, time.monotonic())

        start = time.monotonic()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        result.elapsed = time.monotonic() - start
    return result


async def open_loop(
    url: str, ids: list[str], rate: float, connections: int, sign: Sign = headers
) -> Result:
    """Delivery i is due at start + i / rate whatever happened before it, on at most
    ``connections`` connections; its latency counts from when it was due."""
    result = Result()
    connector = aiohttp.TCPConnector(limit=connections)
    async with aiohttp.ClientSession(connector=connector) as http:

        async def one(due: float, delivery: str) -> None:
            await _post(http, url, delivery, result, sign)
            result.times[delivery] = (due, time.monotonic())

        start = time.monotonic()
        tasks = []
        for i, delivery in enumerate(ids):
            due = start + i / rate
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            tasks.append(asyncio.create_task(one(due, delivery)))
        await asyncio.gather(*tasks)
        result.elapsed = time.monotonic() - start
    return result


def wait_ready(url: str, key: str) -> None:
    """A signed ping answers 200 once the ingress is up and has indexed ``key``."""
    ping = b"{}"
    signed = "sha256=" + hmac.new(SECRET.encode(), ping, hashlib.sha256).hexdigest()

    async def check() -> int:
        async with (
            aiohttp.ClientSession() as http,
            http.post(
                f"{url}/webhooks/github/{key}",
                data=ping,
                headers={
                    "Content-Type": "application/json",
                    "X-GitHub-Event": "ping",
                    "X-GitHub-Delivery": "ping",
                    "X-Hub-Signature-256": signed,
                },
            ) as rsp,
        ):
            return rsp.status

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if asyncio.run(check()) == 200:
                return
        except aiohttp.ClientError:
            pass
        time.sleep(0.2)
    raise SystemExit("the ingress did not become ready")


def manifests(ns: str, n: int) -> list[dict[str, Any]]:
    defaults = SessionDefaults.model_validate({"framework": FRAMEWORK})
    out = []
    for _ in range(n):
        delivery = str(uuid.uuid4())
        d = events.parse(
            "github",
            {"x-github-event": "pull_request", "x-github-delivery": delivery},
            body_of(delivery),
            "application/json",
        )
        out.append(events.build_session(d, ns, defaults))
    return out


def floor_async(
    cp: ControlPlane, ns: str, n: int, concurrency: int, latencies: list[float] | None = None
) -> float:
    """Sessions/s created with the ingress's own client, ``concurrency`` in flight; each
    timed create's latency (ms) is appended to ``latencies`` if given."""
    warm, todo = manifests(ns, concurrency), manifests(ns, n)

    times: list[float] = []

    async def run() -> float:
        # The ingress's own login (common/kube/config.py), not the official client's.
        kube = AsyncSessionsApi(kube_config.configuration(cp.kubeconfig), connections=concurrency)

        async def burst(batch: list[dict[str, Any]]) -> float:
            pending = iter(batch)

            async def worker() -> None:
                for m in pending:
                    sent = time.monotonic()
                    assert await kube.create_session(m) is None
                    times.append((time.monotonic() - sent) * 1000)

            start = time.monotonic()
            await asyncio.gather(*(worker() for _ in range(concurrency)))
            return time.monotonic() - start

        await burst(warm)  # connections open, as in the long-running ingress
        times.clear()
        elapsed = await burst(todo)
        if latencies is not None:
            latencies.extend(times)
        await kube.aclose()
        return n / elapsed

    return asyncio.run(run())


def floor_threads(cp: ControlPlane, ns: str, n: int, concurrency: int) -> float:
    """Sessions/s created with the kubernetes client in ``concurrency`` threads."""
    warm, todo = manifests(ns, concurrency), manifests(ns, n)

    def create(m: dict[str, Any]) -> None:
        rsp = cp.custom.create_namespaced_custom_object(
            "ambient.ai", "v1alpha1", ns, "sessions", m, _preload_content=False
        )
        rsp.read()  # read to the end: the connection goes back to the pool
        rsp.release_conn()

    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(create, warm))  # connections open
        start = time.monotonic()
        list(pool.map(create, todo))
        return n / (time.monotonic() - start)


def row(label: str, value: str, target: str = "") -> None:
    print(f"{label:58} {value:>12}  {target}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-n", type=int, default=1800, help="closed-loop deliveries (and floor)")
    parser.add_argument("--rounds", type=int, default=6, help="floor/ingress rounds (ABBA)")
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--open-rate", type=float, default=50.0, help="open loop: deliveries/s")
    parser.add_argument("--open-seconds", type=float, default=20.0)
    parser.add_argument(
        "--job-rates",
        type=lambda v: [float(x) for x in v.split(",")],
        default=[5.0, 20.0],
        help="deliveries/s with the operator running, comma-separated",
    )
    parser.add_argument("--job-seconds", type=float, default=10.0)
    parser.add_argument("--profile", type=Path, help="write py-spy samples here")
    args = parser.parse_args()
    n, conc = args.n, args.concurrency

    cp = control_plane(conc)
    cp.settle()
    run = uuid.uuid4().hex[:6]
    ns = {p: f"bench-{p}-{run}" for p in ("direct", "threads", "ingress", "open", "jobs")}
    for p in ("direct", "threads"):
        cp.core.create_namespace({"metadata": {"name": ns[p]}})
    key = tenant(cp, ns["ingress"])
    open_key = tenant(cp, ns["open"])
    # No cap in play: a Session queued behind the policy's cap (50 by default) waits for
    # the policy, not for the operator, and delivery -> Job measures the operator.
    job_key = tenant(cp, ns["jobs"], cap=10_000)

    control = {"api": cp.pid("kube-apiserver"), "etcd": cp.pid("etcd")}
    say(f"floor: creating {n} Sessions directly with the kubernetes client, {conc} threads")
    floor_thr = floor_threads(cp, ns["threads"], n, conc)

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log_dir = (ROOT / ".run").resolve()
    log_dir.mkdir(exist_ok=True)
    say("ingress: starting python -m ambient.webhooks.ingress")
    with (log_dir / "bench-ingress.log").open("wb") as out:
        ingress = start_ingress(cp.env, port, out, RATE_PER_SECOND="100000", RATE_BURST="100000")
    operator = None
    try:
        wait_ready(url, key)
        warm = [str(uuid.uuid4()) for _ in range(200)]
        asyncio.run(closed_loop(f"{url}/webhooks/github/{key}", warm, conc))
        spy = None
        if args.profile:
            args.profile.mkdir(parents=True, exist_ok=True)
            spy = py_spy(ingress.pid, args.profile / "ingress-closed-loop.txt", 10)
        # Rounds in ABBA order (floor, ingress, ingress, floor, ...), so drift in what else
        # the machine does hits both alike; the ratio is the median of the rounds' ratios.
        chunk = n // args.rounds
        closed = Result()
        floor_rates: list[float] = []
        floor_ms: list[float] = []  # each direct create's latency, as the acks' are
        ingress_rates: list[float] = []
        cpu_floor: dict[str, float] = {}
        cpu_closed: dict[str, float] = {}
        for r in range(args.rounds):
            say(f"round {r + 1}: {chunk} Sessions direct and {chunk} deliveries, {conc} in flight")
            for kind in ("floor", "ingress") if r % 2 == 0 else ("ingress", "floor"):
                if kind == "floor":
                    meter = CpuMeter(**control)
                    floor_rates.append(floor_async(cp, ns["direct"], chunk, conc, floor_ms))
                    used, into = meter.stop(), cpu_floor
                else:
                    meter = CpuMeter(ingress=ingress.pid, **control)
                    ids = [str(uuid.uuid4()) for _ in range(chunk)]
                    got = asyncio.run(closed_loop(f"{url}/webhooks/github/{key}", ids, conc))
                    used, into = meter.stop(), cpu_closed
                    closed.times.update(got.times)
                    for code, count in got.codes.items():
                        closed.codes[code] = closed.codes.get(code, 0) + count
                    closed.elapsed += got.elapsed
                    ingress_rates.append(got.rate())
                for k, v in used.items():
                    into[k] = into.get(k, 0.0) + v
        if spy is not None:
            spy.wait()

        n_open = int(args.open_rate * args.open_seconds)
        wait_ready(url, open_key)
        say(f"ingress, open loop: {n_open} deliveries at {args.open_rate:g}/s, <= {conc} conns")
        opened = asyncio.run(
            open_loop(
                f"{url}/webhooks/github/{open_key}",
                [str(uuid.uuid4()) for _ in range(n_open)],
                args.open_rate,
                conc,
            )
        )

        # The phases before left thousands of 23 KB Sessions in the API server's cache (its
        # heap, and so its GC work per request, grows with them): delivery -> Job is
        # measured once they are gone, whatever -n the closed loop used.
        say("deleting the closed- and open-loop namespaces before the operator's phase")
        for p in ("direct", "threads", "ingress", "open"):
            cp.core.delete_namespace(ns.pop(p))
        cp.settle(timeout=900)
        say("operator: starting; deliveries at a steady rate, waiting for their Jobs")
        seen: dict[str, float] = {}
        stop = threading.Event()

        def watch_jobs() -> None:
            # Watches end (timeouts, dropped connections): list and watch again until stopped.
            while not stop.is_set():
                w = watch.Watch()
                try:
                    for ev in w.stream(
                        cp.batch.list_namespaced_job, ns["jobs"], timeout_seconds=10
                    ):
                        seen.setdefault(ev["object"].metadata.name, time.monotonic())
                        if stop.is_set():
                            break
                except Exception as exc:
                    say(f"Job watch ended ({type(exc).__name__}); watching again")
                finally:
                    w.stop()

        threading.Thread(target=watch_jobs, daemon=True).start()
        with (log_dir / "bench-ingress-operator.log").open("wb") as out:
            operator = subprocess.Popen(
                [sys.executable, "-m", "ambient.operator", "--liveness", ""],
                # only this run's namespace: Sessions left by other runs are not its work
                env={
                    **cp.env,
                    "AMBIENT_NAMESPACES": ns["jobs"],
                    "AMBIENT_DEFAULT_MAX_CONCURRENT_SESSIONS": "10000",
                },
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
            )
        time.sleep(5)  # let kopf start watching before the clock runs
        wait_ready(url, job_key)
        op_spy = None
        if args.profile:
            op_spy = py_spy(operator.pid, args.profile / "operator-jobs.txt", 20)
        # A gentle rate first (the operator keeps up), then a sustained one (it may not):
        # each waits until its Jobs exist, so the next starts on an idle operator.
        job_runs: list[tuple[float, int, list[float], dict[int, int], dict[str, float]]] = []
        components = {c: cp.pid(c) for c in ("kube-controller-manager", "kube-scheduler", "kwok")}
        for job_rate in args.job_rates:
            count = int(job_rate * args.job_seconds)
            say(f"delivery -> Job: {count} deliveries at {job_rate:g}/s")
            meter = CpuMeter(operator=operator.pid, ingress=ingress.pid, **control, **components)
            job_ids = [str(uuid.uuid4()) for _ in range(count)]
            jobs = asyncio.run(
                open_loop(f"{url}/webhooks/github/{job_key}", job_ids, job_rate, conc)
            )
            deadline = time.monotonic() + 120
            want = {d: f"{session_of(d)}-a1" for d in job_ids}
            while time.monotonic() < deadline and not all(j in seen for j in want.values()):
                time.sleep(0.2)
            used = meter.stop()
            to_job = [(seen[j] - jobs.times[d][0]) * 1000 for d, j in want.items() if j in seen]
            job_runs.append((job_rate, count, to_job, jobs.codes, used))
        stop.set()
        if op_spy is not None:
            op_spy.wait()
    finally:
        ingress.terminate()
        ingress.wait(timeout=30)
        if operator is not None:
            operator.terminate()
            operator.wait(timeout=30)

    c_acks, o_acks = closed.ack_ms(), opened.ack_ms()
    print()
    row("figure", "value", "target")
    floor_aio = statistics.median(floor_rates)
    ratios = [i / f for i, f in zip(ingress_rates, floor_rates, strict=True)]
    row(
        f"floor: direct creates/s, kubernetes client ({conc} threads)",
        f"{floor_thr:.1f}",
        "once, first (before this run's other load): for reference only",
    )
    row(
        f"floor: direct creates/s, ingress's client ({conc} in flight, median)",
        f"{floor_aio:.1f}",
        "rounds: " + " ".join(f"{r:.0f}" for r in floor_rates),
    )
    row(
        f"closed loop ({conc} in flight): ingress Sessions/s (median)",
        f"{statistics.median(ingress_rates):.1f}",
        ">= 50; rounds: " + " ".join(f"{r:.0f}" for r in ingress_rates),
    )
    row(
        "closed loop: ingress / floor (median of the rounds' ratios)",
        f"{statistics.median(ratios):.2f}x",
        ">= 0.7x; rounds: " + " ".join(f"{r:.2f}" for r in ratios),
    )
    row("closed loop: ack latency p50 (ms)", f"{statistics.median(c_acks):.1f}")
    row("closed loop: ack latency p99 (ms)", f"{pct(c_acks, 0.99):.1f}", "<= 250")
    # The same ratio on any machine: a delivery's acknowledgement against a direct create
    # of its Session, both at the same concurrency and in the same rounds.
    row(f"floor: direct create latency p99 (ms, {conc} in flight)", f"{pct(floor_ms, 0.99):.1f}")
    row(
        "closed loop: p99 ack / p99 direct create",
        f"{pct(c_acks, 0.99) / pct(floor_ms, 0.99):.2f}x",
        "<= 1.3x",
    )
    row("closed loop: status codes", json.dumps(closed.codes))
    if "api" in cpu_floor:
        per = {k: v / (args.rounds * (chunk + conc)) * 1000 for k, v in cpu_floor.items()}
        row("CPU ms per Session, direct: API server + etcd", f"{per['api'] + per['etcd']:.1f}")
    per = {k: v / (args.rounds * chunk) * 1000 for k, v in cpu_closed.items()}
    if "api" in per:
        row("CPU ms per Session, via ingress: API server + etcd", f"{per['api'] + per['etcd']:.1f}")
    row("CPU ms per delivery: the ingress process", f"{per['ingress']:.2f}")
    row(
        f"open loop ({args.open_rate:g}/s, <= {conc} conns): achieved Sessions/s",
        f"{opened.rate():.1f}",
    )
    row("open loop: ack latency p50 (ms, from when due)", f"{statistics.median(o_acks):.1f}")
    row("open loop: ack latency p99 (ms, from when due)", f"{pct(o_acks, 0.99):.1f}", "<= 250")
    row("open loop: status codes", json.dumps(opened.codes))
    for job_rate, count, to_job, codes, used in job_runs:
        label = f"delivery -> Job at {job_rate:g}/s"
        row(f"{label}: Jobs seen", f"{len(to_job)}/{count}", json.dumps(codes))
        if to_job:
            row(f"{label}: p50 (ms)", f"{statistics.median(to_job):.1f}")
            row(f"{label}: p99 (ms)", f"{pct(to_job, 0.99):.1f}", "<= 2000")
        # Until the last Job was seen: the Pods' lives under kwok overlap and count too.
        row(
            f"{label}: CPU ms per delivery",
            " ".join(f"{k} {v / count * 1000:.1f}" for k, v in sorted(used.items())),
        )
    if args.profile:
        print(f"py-spy samples (collapsed stacks): {args.profile / 'ingress-closed-loop.txt'}")
    for name in ns.values():
        cp.core.delete_namespace(name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
