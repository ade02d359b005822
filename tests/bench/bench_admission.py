"""Benchmark: the admission webhook's latency, and what it costs Session creates.

Run with ``make bench``. Prints figures; asserts nothing (the machine is shared).

* direct: AdmissionReview requests for a Session create, 100 in flight at once, sent
  straight to the webhook over HTTPS; p50 and p99 latency (targets 5 ms and 25 ms).
* through the API server: the same number of Session creates into a namespace the webhook
  governs and into one it does not, alternated in rounds; the ratio of the medians
  (target: no more than 1.3x slower with the webhook).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import aiohttp
import httpx
from kubernetes import client, config

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))

from integration.conftest import tls_files  # noqa: E402

from ambient.webhooks.admission.config import webhook_configuration  # noqa: E402

CLUSTER = [sys.executable, str(ROOT / "hack" / "cluster.py")]
LABEL = "ambient.ai/admission-bench"


def say(message: str) -> None:
    print(f"==> [{time.strftime('%H:%M:%S')}] {message}", flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def session(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "ambient.ai/v1alpha1",
        "kind": "Session",
        "metadata": {"name": name},
        "spec": {
            "trigger": {"source": "manual", "event": "bench", "payload": {"n": name}},
            "framework": {"type": "script", "config": {"command": ["true"]}},
            "policy": {
                "modelConstraints": {"allowed": ["claude-3-sonnet"], "budget": "1.00"},
                "toolConstraints": {"allowed": ["Bash"]},
            },
        },
    }


def policy() -> dict[str, Any]:
    return {
        "apiVersion": "ambient.ai/v1alpha1",
        "kind": "NamespacePolicy",
        "metadata": {"name": "policy"},
        "spec": {
            "models": {"allowed": ["claude-3-sonnet"], "budget": {"monthly": "1000.00"}},
            "tools": {"allowed": ["Bash"]},
        },
    }


def review(namespace: str, i: int) -> bytes:
    obj = session(f"r{i}")
    obj["metadata"]["namespace"] = namespace
    return json.dumps(
        {
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "request": {
                "uid": str(uuid.uuid4()),
                "resource": {"group": "ambient.ai", "version": "v1alpha1", "resource": "sessions"},
                "operation": "CREATE",
                "namespace": namespace,
                "name": f"r{i}",
                "userInfo": {"username": "bench", "groups": ["system:authenticated"]},
                "object": obj,
            },
        }
    ).encode()


async def direct(url: str, ca: Path, namespace: str, total: int, concurrency: int) -> list[float]:
    """``concurrency`` requests always in flight (aiohttp: a light client, so the figures
    are the webhook's, not the load generator's)."""
    latencies: list[float] = []
    context = ssl.create_default_context(cafile=str(ca))
    connector = aiohttp.TCPConnector(ssl=context, limit=concurrency)
    bodies = [review(namespace, i) for i in range(total)]
    async with aiohttp.ClientSession(connector=connector) as http:
        counter = iter(bodies)

        async def worker() -> None:
            for body in counter:
                start = time.perf_counter()
                async with http.post(
                    url, data=body, headers={"Content-Type": "application/json"}
                ) as rsp:
                    answer = await rsp.json()
                latencies.append(time.perf_counter() - start)
                assert answer["response"]["allowed"], answer

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies


def creates(
    custom: client.CustomObjectsApi, namespace: str, prefix: str, n: int, workers: int
) -> float:
    start = time.monotonic()
    with ThreadPoolExecutor(workers) as pool:
        list(
            pool.map(
                lambda i: custom.create_namespaced_custom_object(
                    "ambient.ai", "v1alpha1", namespace, "sessions", session(f"{prefix}-{i:04d}")
                ),
                range(n),
            )
        )
    return time.monotonic() - start


def server_quantile(metrics: str, q: float) -> float:
    """Upper bound of the histogram bucket holding quantile ``q`` of the webhook's own
    decision time (from its /metrics), for Session creates."""
    buckets: list[tuple[float, float]] = []
    for line in metrics.splitlines():
        if (
            line.startswith("ambient_admission_duration_seconds_bucket{")
            and 'resource="sessions"' in line
        ):
            le = line.split('le="')[1].split('"')[0]
            buckets.append(
                (float("inf") if le == "+Inf" else float(le), float(line.rsplit(" ", 1)[1]))
            )
    total = buckets[-1][1] if buckets else 0
    return next((le for le, count in buckets if total and count >= q * total), float("nan"))


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--creates", type=int, default=200, help="Session creates per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=16)
    args = parser.parse_args()

    say("local control plane")
    up = subprocess.run([*CLUSTER, "up"], stdout=subprocess.PIPE, text=True, check=True)
    kubeconfig = up.stdout.strip().splitlines()[-1]
    kubectl = subprocess.run(
        [*CLUSTER, "bin", "kubectl"], capture_output=True, text=True, check=True
    ).stdout.strip()
    env = {**os.environ, "KUBECONFIG": kubeconfig}

    def k(*a: str, stdin: str | None = None) -> None:
        subprocess.run(
            [kubectl, *a], env=env, input=stdin, text=True, check=True, capture_output=True
        )

    k("apply", "--server-side", "--force-conflicts", "-f", str(ROOT / "crds"))
    cfg = client.Configuration()
    config.load_kube_config(config_file=kubeconfig, client_configuration=cfg)
    cfg.connection_pool_maxsize = args.workers
    api = client.ApiClient(cfg)
    core, custom = client.CoreV1Api(api), client.CustomObjectsApi(api)

    run = uuid.uuid4().hex[:6]
    governed, plain = f"bench-adm-{run}", f"bench-noadm-{run}"
    core.create_namespace({"metadata": {"name": governed, "labels": {LABEL: run}}})
    core.create_namespace({"metadata": {"name": plain}})
    for ns in (governed, plain):
        k("apply", "-n", ns, "-f", "-", stdin=json.dumps(policy()))

    tmp = Path(tempfile.mkdtemp(prefix="bench-admission-"))
    ca, cert, key = tls_files(tmp)
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "ambient.webhooks.admission"],
        env={
            **env,
            "AMBIENT_ADMISSION_CERT_FILE": str(cert),
            "AMBIENT_ADMISSION_KEY_FILE": str(key),
            "AMBIENT_ADMISSION_HOST": "127.0.0.1",
            "AMBIENT_ADMISSION_PORT": str(port),
        },
        stdout=(tmp / "webhook.log").open("wb"),
        stderr=subprocess.STDOUT,
    )
    name = f"ambient-admission-bench-{run}"
    try:
        url = f"https://127.0.0.1:{port}/validate"
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"https://127.0.0.1:{port}/readyz", verify=str(ca)).raise_for_status()
                break
            except (httpx.HTTPError, OSError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        say(f"direct: {args.requests} AdmissionReviews, {args.concurrency} in flight")
        asyncio.run(direct(url, ca, governed, 300, args.concurrency))  # warm up
        started = time.monotonic()
        latencies = asyncio.run(direct(url, ca, governed, args.requests, args.concurrency))
        direct_rate = args.requests / (time.monotonic() - started)
        metrics = httpx.get(f"https://127.0.0.1:{port}/metrics", verify=str(ca)).text
        cfg_body = webhook_configuration(
            ca.read_bytes(), url=url, name=name, match_labels={LABEL: run}
        )
        k("apply", "-f", "-", stdin=json.dumps(cfg_body))
        time.sleep(2)
        with_hook: list[float] = []
        without: list[float] = []
        for r in range(args.rounds):
            say(f"round {r + 1}: {args.creates} Session creates with and without the webhook")
            without.append(creates(custom, plain, f"r{r}", args.creates, args.workers))
            with_hook.append(creates(custom, governed, f"r{r}", args.creates, args.workers))
    finally:
        subprocess.run(
            [kubectl, "delete", "validatingwebhookconfiguration", name, "--ignore-not-found"],
            env=env,
            capture_output=True,
            check=False,
        )
        proc.terminate()
        proc.wait(timeout=20)
        for ns in (governed, plain):
            core.delete_namespace(ns)

    p50, p99 = pct(latencies, 0.5) * 1000, pct(latencies, 0.99) * 1000
    rate_with = args.creates / statistics.median(with_hook)
    rate_without = args.creates / statistics.median(without)
    print()
    print(f"{'figure':50} {'value':>10}")
    print(f"{'direct: AdmissionReviews sent':50} {len(latencies):>10}")
    print(f"{'direct: p50 latency (target <= 5 ms)':50} {p50:>8.1f}ms")
    print(f"{'direct: p99 latency (target <= 25 ms)':50} {p99:>8.1f}ms")
    print(f"{'direct: reviews answered per second':50} {direct_rate:>10.1f}")
    for q in (0.5, 0.99):
        label = f"webhook-side decision time p{int(q * 100)} (histogram bucket)"
        print(f"{label:50} {server_quantile(metrics, q) * 1000:>8.1f}ms")
    print(f"{'creates/s without the webhook (median)':50} {rate_without:>10.1f}")
    print(f"{'creates/s with the webhook (median)':50} {rate_with:>10.1f}")
    ratio = rate_without / rate_with
    print(f"ratio, creates with the webhook take {ratio:.2f}x as long (target <= 1.3x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
