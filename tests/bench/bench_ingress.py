"""Benchmark: signed GitHub pull_request deliveries through the ingress, against the floor.

Run with ``make bench``. Prints figures, never asserts on time (the machine is shared).

* floor: the same Session manifests the ingress builds, created directly with the
  Kubernetes client at the same concurrency (100): Sessions/s.
* ingress: N signed deliveries at 100 concurrent requests against
  ``python -m ambient.webhooks.ingress`` (the real process, uvicorn with httptools/uvloop)
  backed by the local API server: Sessions/s, p50/p99 acknowledgement latency, and the
  ratio to the floor. Targets: p99 ack <= 250 ms, >= 50 Sessions/s, >= 0.7x the floor.
* delivery -> Job: with the operator running, deliveries at a steady rate; the time from
  sending a delivery to its runner Job appearing in a watch. Target: p99 <= 2 s.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import hmac
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
from kubernetes import client, config, watch

from ambient.crds.models import SessionDefaults
from ambient.webhooks.ingress import events

ROOT = Path(__file__).resolve().parents[2]
CLUSTER = [sys.executable, str(ROOT / "hack" / "cluster.py")]
PAYLOAD = json.loads((ROOT / "tests/fixtures/github/pull_request.opened.json").read_text())
BODY = json.dumps(PAYLOAD).encode()
SECRET = "bench-signing-secret"
SIGNATURE = "sha256=" + hmac.new(SECRET.encode(), BODY, hashlib.sha256).hexdigest()
FRAMEWORK = {"type": "script", "config": {"command": ["true"]}}


def say(message: str) -> None:
    print(f"==> [{time.strftime('%H:%M:%S')}] {message}", flush=True)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def tenant(core: Any, custom: Any, ns: str) -> str:
    core.create_namespace({"metadata": {"name": ns}})
    key = uuid.uuid4().hex
    core.create_namespaced_secret(
        ns,
        {
            "metadata": {"name": "signing"},
            "data": {"github": base64.b64encode(SECRET.encode()).decode()},
        },
    )
    custom.create_namespaced_custom_object(
        "ambient.ai",
        "v1alpha1",
        ns,
        "namespacepolicies",
        {
            "apiVersion": "ambient.ai/v1alpha1",
            "kind": "NamespacePolicy",
            "metadata": {"name": "policy"},
            "spec": {
                "webhookAuth": {
                    "apiKeys": {"github": hashlib.sha256(key.encode()).hexdigest()},
                    "signingSecretRef": {"name": "signing"},
                },
                "defaults": {"framework": FRAMEWORK},
                "ingress": {"github": {}},
            },
        },
    )
    return key


async def deliver(
    url: str, key: str, ids: list[str], concurrency: int, pace: float = 0.0
) -> tuple[float, dict[str, tuple[float, float]], dict[int, int]]:
    """Send one delivery per id; returns elapsed, id -> (sent, acked), and status counts."""
    times: dict[str, tuple[float, float]] = {}
    codes: dict[int, int] = {}
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    sem = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=30) as http:

        async def one(i: int, delivery: str) -> None:
            if pace:
                await asyncio.sleep(i / pace)
            async with sem:
                sent = time.monotonic()
                resp = await http.post(
                    f"{url}/webhooks/github/{key}",
                    content=BODY,
                    headers={
                        "Content-Type": "application/json",
                        "X-GitHub-Event": "pull_request",
                        "X-GitHub-Delivery": delivery,
                        "X-Hub-Signature-256": SIGNATURE,
                    },
                )
                times[delivery] = (sent, time.monotonic())
                codes[resp.status_code] = codes.get(resp.status_code, 0) + 1

        start = time.monotonic()
        await asyncio.gather(*(one(i, d) for i, d in enumerate(ids)))
        return time.monotonic() - start, times, codes


def wait_ready(url: str, key: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            ping = httpx.post(
                f"{url}/webhooks/github/{key}",
                content=b"{}",
                headers={
                    "Content-Type": "application/json",
                    "X-GitHub-Event": "ping",
                    "X-GitHub-Delivery": "ping",
                    "X-Hub-Signature-256": "sha256="
                    + hmac.new(SECRET.encode(), b"{}", hashlib.sha256).hexdigest(),
                },
            )
            if ping.status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise SystemExit("the ingress did not become ready")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-n", type=int, default=1000, help="deliveries (and direct Sessions)")
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--job-deliveries", type=int, default=200)
    parser.add_argument("--job-rate", type=float, default=20.0, help="deliveries/s to the operator")
    args = parser.parse_args()
    n, conc = args.n, args.concurrency

    say("local control plane")
    up = subprocess.run([*CLUSTER, "up"], stdout=subprocess.PIPE, text=True, check=True)
    kubeconfig = up.stdout.strip().splitlines()[-1]
    kubectl = subprocess.run(
        [*CLUSTER, "bin", "kubectl"], capture_output=True, text=True, check=True
    ).stdout.strip()
    env = {**os.environ, "KUBECONFIG": kubeconfig}
    subprocess.run(
        [kubectl, "apply", "--server-side", "--force-conflicts", "-f", str(ROOT / "crds")],
        env=env,
        check=True,
        capture_output=True,
    )
    cfg = client.Configuration()
    config.load_kube_config(config_file=kubeconfig, client_configuration=cfg)
    cfg.connection_pool_maxsize = conc
    api = client.ApiClient(cfg)
    core, custom, batch = (
        client.CoreV1Api(api),
        client.CustomObjectsApi(api),
        client.BatchV1Api(api),
    )
    run = uuid.uuid4().hex[:6]
    floor_ns, ingress_ns, job_ns = (f"bench-{p}-{run}" for p in ("direct", "ingress", "jobs"))
    core.create_namespace({"metadata": {"name": floor_ns}})
    key = tenant(core, custom, ingress_ns)
    job_key = tenant(core, custom, job_ns)

    # floor: the manifests the ingress would build, created directly
    defaults = SessionDefaults.model_validate({"framework": FRAMEWORK})
    manifests = []
    for _ in range(n):
        d = events.parse(
            "github",
            {"x-github-event": "pull_request", "x-github-delivery": str(uuid.uuid4())},
            BODY,
            "application/json",
        )
        manifests.append(events.build_session(d, floor_ns, defaults))
    say(f"floor: creating {n} Sessions directly ({conc} at a time)")
    start = time.monotonic()
    with ThreadPoolExecutor(conc) as pool:
        list(
            pool.map(
                lambda m: custom.create_namespaced_custom_object(
                    "ambient.ai", "v1alpha1", floor_ns, "sessions", m, _preload_content=False
                ),
                manifests,
            )
        )
    floor_s = time.monotonic() - start
    floor_rate = n / floor_s

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log_dir = (ROOT / ".run").resolve()
    log_dir.mkdir(exist_ok=True)
    say("ingress: starting python -m ambient.webhooks.ingress")
    with (log_dir / "bench-ingress.log").open("wb") as out:
        ingress = subprocess.Popen(
            [sys.executable, "-m", "ambient.webhooks.ingress"],
            env={
                **env,
                "AMBIENT_INGRESS_HOST": "127.0.0.1",
                "AMBIENT_INGRESS_PORT": str(port),
                "AMBIENT_INGRESS_RATE_PER_SECOND": "100000",
                "AMBIENT_INGRESS_RATE_BURST": "100000",
            },
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )
    operator = None
    try:
        wait_ready(url, key)
        say(f"ingress: {n} signed pull_request deliveries, {conc} concurrent")
        ids = [str(uuid.uuid4()) for _ in range(n)]
        elapsed, times, codes = asyncio.run(deliver(url, key, ids, conc))
        acks = [(b - a) * 1000 for a, b in times.values()]
        rate = codes.get(202, 0) / elapsed

        say("operator: starting; deliveries at a steady rate, waiting for their Jobs")
        seen: dict[str, float] = {}
        stop = threading.Event()

        def watch_jobs() -> None:
            w = watch.Watch()
            for ev in w.stream(batch.list_namespaced_job, job_ns, timeout_seconds=600):
                seen.setdefault(ev["object"].metadata.name, time.monotonic())
                if stop.is_set():
                    w.stop()

        watcher = threading.Thread(target=watch_jobs, daemon=True)
        watcher.start()
        with (log_dir / "bench-ingress-operator.log").open("wb") as out:
            operator = subprocess.Popen(
                [sys.executable, "-m", "ambient.operator", "--liveness", ""],
                # only this run's namespace: Sessions left by other runs are not its work
                env={**env, "AMBIENT_NAMESPACES": job_ns},
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
            )
        time.sleep(5)  # let kopf start watching before the clock runs
        job_ids = [str(uuid.uuid4()) for _ in range(args.job_deliveries)]
        wait_ready(url, job_key)
        _, job_times, job_codes = asyncio.run(
            deliver(url, job_key, job_ids, conc, pace=args.job_rate)
        )
        deadline = time.monotonic() + 120
        want = {d: f"{events.session_name('github', d)}-a1" for d in job_ids}
        while time.monotonic() < deadline and not all(j in seen for j in want.values()):
            time.sleep(0.2)
        stop.set()
        to_job = [(seen[j] - job_times[d][0]) * 1000 for d, j in want.items() if j in seen]
    finally:
        ingress.terminate()
        ingress.wait(timeout=30)
        if operator is not None:
            operator.terminate()
            operator.wait(timeout=30)

    print()
    print(f"{'figure':52} {'value':>10}")
    print(f"{'direct create (floor), Sessions/s':52} {floor_rate:10.1f}")
    print(f"{'ingress, Sessions/s (202s / elapsed)':52} {rate:10.1f}")
    print(f"{'ingress / floor':52} {rate / floor_rate:10.2f}")
    print(f"{'ack latency p50 (ms)':52} {statistics.median(acks):10.1f}")
    print(f"{'ack latency p99 (ms)':52} {pct(acks, 0.99):10.1f}")
    print(f"{'status codes':52} {json.dumps(codes):>10}")
    print(f"{'delivery -> Job, Jobs seen':52} {len(to_job):6d}/{len(want)}")
    if to_job:
        print(f"{'delivery -> Job p50 (ms)':52} {statistics.median(to_job):10.1f}")
        print(f"{'delivery -> Job p99 (ms)':52} {pct(to_job, 0.99):10.1f}")
    print(f"{'status codes (operator phase)':52} {json.dumps(job_codes):>10}")
    print("targets: p99 ack <= 250 ms; >= 50 Sessions/s; >= 0.7x floor; delivery->Job p99 <= 2 s")
    for ns in (floor_ns, ingress_ns, job_ns):
        core.delete_namespace(ns)
    return 0


if __name__ == "__main__":
    sys.exit(main())
