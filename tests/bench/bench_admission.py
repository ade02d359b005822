"""Benchmark: the admission webhook's latency, and what it costs Session creates.

Run with ``make bench`` (or alone: ``.venv/bin/python tests/bench/bench_admission.py``).
Prints figures with their targets beside them; asserts nothing (the machine is shared).

* direct, closed loop: AdmissionReview requests for a Session create, 100 always in
  flight, sent straight to ``python -m ambient.webhooks.admission`` over HTTPS; p50 and
  p99 latency (targets 5 ms and 25 ms) and reviews/s. With 100 always in flight, latency
  is 100 / throughput (Little's law), so this mostly measures throughput.
* direct, open loop: reviews arriving at a fixed rate (``--open-rate``, 200/s: a busy
  cluster's Session writes) on up to 100 connections, latency from each one's scheduled
  time: what the API server waits for at that load.
* the webhook's own decision time (its histogram, bucket upper bounds).
* through the API server: Session creates into a namespace the webhook governs and into
  one it does not, in alternating rounds (ABBA order, so drift hits both alike); the
  median over rounds of each round's with/without time ratio (target <= 1.15x, issue 19),
  and the API server's CPU per create with and without. A third namespace in the same
  rounds is governed by a trivial ValidatingAdmissionPolicy (one ``true`` validation, no
  parameter): the floor any policy costs on this API server, and ours against it.
  ``--mode`` says what governs:
  ``webhooks`` (default; what the chart and `make run` register: both webhooks called for
  every write), ``fast`` (the fast path, ``admission.fastPath.enabled``: the
  ValidatingAdmissionPolicy, the MutatingAdmissionPolicy where served, both webhooks
  behind their matchConditions) or ``validating`` (the validating webhook alone, what
  this benchmark registered before).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
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
from kubernetes import client
from support import ROOT, CpuMeter, control_plane, free_port, pct, py_spy, say

sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "hack"))  # integration.conftest imports hack/localrun

from integration.conftest import tls_files

from ambient.runners import registry
from ambient.webhooks.admission.registration import registrations, webhook_configuration

LABEL = "ambient.ai/admission-bench"
TRIVIAL_LABEL = "ambient.ai/admission-bench-trivial"
JSON = {"Content-Type": "application/json"}


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


async def closed_loop(
    url: str, ca: Path, namespace: str, total: int, *, concurrency: int, meter: CpuMeter
) -> tuple[list[float], float, dict[str, float]]:
    """``concurrency`` requests always in flight (aiohttp: a light client, so the figures
    are the webhook's, not the load generator's); latencies, reviews/s and ``meter``'s
    CPU seconds. 300 reviews first, untimed, on the same connections (the API server
    keeps its own connections open)."""
    latencies: list[float] = []
    context = ssl.create_default_context(cafile=str(ca))
    connector = aiohttp.TCPConnector(ssl=context, limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as http:

        async def burst(bodies: list[bytes], record: bool) -> None:
            counter = iter(bodies)

            async def worker() -> None:
                for body in counter:
                    start = time.perf_counter()
                    async with http.post(url, data=body, headers=JSON) as rsp:
                        answer = await rsp.json()
                    if record:
                        latencies.append(time.perf_counter() - start)
                    assert answer["response"]["allowed"], answer

            await asyncio.gather(*(worker() for _ in range(concurrency)))

        await burst([review(namespace, i) for i in range(300)], record=False)
        bodies = [review(namespace, i) for i in range(total)]
        meter.start()
        started = time.perf_counter()
        await burst(bodies, record=True)
        elapsed = time.perf_counter() - started
        return latencies, total / elapsed, meter.stop()


async def open_loop(
    url: str, ca: Path, namespace: str, total: int, *, rate: float, connections: int
) -> tuple[list[float], float]:
    """Review i is due at start + i / rate whatever happened before it, on at most
    ``connections`` connections; its latency counts from when it was due."""
    latencies: list[float] = []
    context = ssl.create_default_context(cafile=str(ca))
    connector = aiohttp.TCPConnector(ssl=context, limit=connections)
    bodies = [review(namespace, i) for i in range(total)]
    async with aiohttp.ClientSession(connector=connector) as http:

        async def one(due: float, body: bytes) -> None:
            async with http.post(url, data=body, headers=JSON) as rsp:
                answer = await rsp.json()
            latencies.append(time.perf_counter() - due)
            assert answer["response"]["allowed"], answer

        started = time.perf_counter()
        tasks = []
        for i, body in enumerate(bodies):
            due = started + i / rate
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            tasks.append(asyncio.create_task(one(due, body)))
        await asyncio.gather(*tasks)
        return latencies, total / (time.perf_counter() - started)


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


ADMISSION_SERIES = re.compile(
    r"^apiserver_(?P<metric>admission_match_condition_evaluation_seconds|"
    r"admission_controller_admission_duration_seconds|"
    r"admission_step_admission_duration_seconds)_(?P<field>sum|count)"
    r"\{(?P<labels>[^}]*)\} (?P<value>[0-9.e+-]+)$",
    re.MULTILINE,
)
PART_LABEL = {
    "admission_match_condition_evaluation_seconds": ("name", "matchConditions of"),
    "admission_controller_admission_duration_seconds": ("name", "admission plugin"),
    "admission_step_admission_duration_seconds": ("type", "all admission, step"),
}


def admission_parts(metrics: str, run_name: str) -> dict[str, list[float]]:
    """Where the API server's admission time goes, from its own histograms: each admission
    plugin (the policies' plugins, the webhooks'), each webhook's or policy's
    matchConditions, and all of admission, on Session creates, as {part: [seconds,
    evaluations]} so far. Wall time inside the API server, not CPU: it says which part of a
    create's admission costs what, beside the same parts for creates without ours. (The
    policies' own check histograms are observed only for refusals.)"""
    parts: dict[str, list[float]] = {}
    for match in ADMISSION_SERIES.finditer(metrics):
        labels = dict(re.findall(r'(\w+)="([^"]*)"', match["labels"]))
        if labels.get("operation") != "CREATE":
            continue
        key, kind = PART_LABEL[match["metric"]]
        entry = parts.setdefault(f"{kind} {labels.get(key, '').replace(run_name, 'ours')}", [0, 0])
        entry[0 if match["field"] == "sum" else 1] += float(match["value"])
    return parts


def trivial_policy(name: str, run: str) -> list[dict[str, Any]]:
    """The floor of any admission policy: a ValidatingAdmissionPolicy whose one validation
    is ``true``, no parameter, bound to one namespace. What it costs a Session create is
    what the API server spends on any policy at all, whatever its rules."""
    group = "admissionregistration.k8s.io/v1"
    return [
        {
            "apiVersion": group,
            "kind": "ValidatingAdmissionPolicy",
            "metadata": {"name": name},
            "spec": {
                "failurePolicy": "Fail",
                "matchConstraints": {
                    "resourceRules": [
                        {
                            "apiGroups": ["ambient.ai"],
                            "apiVersions": ["*"],
                            "operations": ["CREATE", "UPDATE"],
                            "resources": ["sessions"],
                        }
                    ]
                },
                "validations": [{"expression": "true"}],
            },
        },
        {
            "apiVersion": group,
            "kind": "ValidatingAdmissionPolicyBinding",
            "metadata": {"name": name},
            "spec": {
                "policyName": name,
                "validationActions": ["Deny"],
                "matchResources": {"namespaceSelector": {"matchLabels": {TRIVIAL_LABEL: run}}},
            },
        },
    ]


def row(label: str, value: str, target: str = "") -> None:
    print(f"{label:60} {value:>10}  {target}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--open-rate", type=float, default=200.0, help="open loop: reviews/s")
    parser.add_argument("--open-seconds", type=float, default=15.0)
    parser.add_argument("--creates", type=int, default=1000, help="Session creates per round")
    parser.add_argument("--rounds", type=int, default=8, help="rounds (each: with and without)")
    parser.add_argument("--workers", type=int, default=16)
    parser.add_argument("--profile", type=Path, help="write py-spy samples here")
    parser.add_argument(
        "--mode",
        choices=("fast", "webhooks", "validating"),
        default="webhooks",
        help="what governs the namespace (see the module docstring)",
    )
    parser.add_argument(
        "--creator-policy",
        choices=("served", "off"),
        default="served",
        help="fast mode: stamp creators with the MutatingAdmissionPolicy where the API server "
        "serves it, or (off) with the mutating webhook, as on clusters that do not",
    )
    args = parser.parse_args()

    cp = control_plane(args.workers)
    cp.settle()
    run = uuid.uuid4().hex[:6]
    governed, plain = f"bench-adm-{run}", f"bench-noadm-{run}"
    trivial = f"bench-trivadm-{run}"
    cp.core.create_namespace({"metadata": {"name": governed, "labels": {LABEL: run}}})
    cp.core.create_namespace({"metadata": {"name": plain}})
    cp.core.create_namespace({"metadata": {"name": trivial, "labels": {TRIVIAL_LABEL: run}}})
    for ns in (governed, plain, trivial):
        cp.kubectl("apply", "-n", ns, "-f", "-", stdin=json.dumps(policy()))

    tmp = Path(tempfile.mkdtemp(prefix="bench-admission-"))
    ca, cert, key = tls_files(tmp)
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "ambient.webhooks.admission"],
        env={
            **cp.env,
            "AMBIENT_ADMISSION_CERT_FILE": str(cert),
            "AMBIENT_ADMISSION_KEY_FILE": str(key),
            "AMBIENT_ADMISSION_HOST": "127.0.0.1",
            "AMBIENT_ADMISSION_PORT": str(port),
        },
        stdout=(tmp / "webhook.log").open("wb"),
        stderr=subprocess.STDOUT,
    )
    name = f"ambient-admission-bench-{run}"
    items: list[dict[str, Any]] = []
    n_open = int(args.open_rate * args.open_seconds)
    try:
        url = f"https://127.0.0.1:{port}/validate"
        deadline = time.monotonic() + 120  # a loaded machine starts Python slowly
        while True:
            try:
                httpx.get(f"https://127.0.0.1:{port}/readyz", verify=str(ca)).raise_for_status()
                break
            except (httpx.HTTPError, OSError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        say(f"direct, closed loop: {args.requests} AdmissionReviews, {args.concurrency} in flight")
        spy = None
        if args.profile:
            args.profile.mkdir(parents=True, exist_ok=True)
            spy = py_spy(proc.pid, args.profile / "admission-closed-loop.txt", 3)
        latencies, direct_rate, used = asyncio.run(
            closed_loop(
                url,
                ca,
                governed,
                args.requests,
                concurrency=args.concurrency,
                meter=CpuMeter(webhook=proc.pid),
            )
        )
        webhook_cpu = used["webhook"] / args.requests
        if spy is not None:
            spy.wait()
        say(f"direct, open loop: {n_open} AdmissionReviews at {args.open_rate:g}/s")
        open_latencies, open_rate = asyncio.run(
            open_loop(url, ca, governed, n_open, rate=args.open_rate, connections=args.concurrency)
        )
        metrics = httpx.get(f"https://127.0.0.1:{port}/metrics", verify=str(ca)).text
        if args.mode == "validating":
            items = [
                webhook_configuration(
                    ca.read_bytes(), url=url, name=name, match_labels={LABEL: run}
                )
            ]
        else:
            served = subprocess.run(
                [cp.kubectl_path, "api-resources", "--api-group=admissionregistration.k8s.io",
                 "-o", "name"],
                env=cp.env, capture_output=True, text=True, check=True,
            ).stdout  # fmt: skip
            items = registrations(
                ca.read_bytes(),
                registry.load(),
                url=url,
                name=name,
                match_labels={LABEL: run},
                fast_path=args.mode == "fast",
                mutating_policy=args.creator_policy == "served"
                and "mutatingadmissionpolicies." in served,
            )
        items += trivial_policy(f"{name}-trivial", run)
        say(f"registered ({args.mode}): {', '.join(i['kind'] for i in items)}")
        cp.kubectl(
            "apply",
            "-f",
            "-",
            stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": items}),
        )
        time.sleep(2)
        creates(cp.custom, governed, "warm", 50, args.workers)  # the API server's connection
        parts: dict[str, dict[str, list[float]]] = {"with": {}, "without": {}, "floor": {}}
        with_hook: list[float] = []
        without: list[float] = []
        floor: list[float] = []
        cpu: dict[str, dict[str, float]] = {"with": {}, "without": {}, "floor": {}}
        pids = {
            "api": cp.pid("kube-apiserver"),
            "etcd": cp.pid("etcd"),
            "webhook": proc.pid,
        }
        for r in range(args.rounds):
            say(
                f"round {r + 1}: {args.creates} Session creates each: without admission, "
                "under a trivial policy, and with ours"
            )
            order = [(plain, without, "without"), (trivial, floor, "floor")]
            order.append((governed, with_hook, "with"))
            for ns, times, mode in order if r % 2 == 0 else order[::-1]:
                parts_before = admission_parts(cp.server_metrics(), name)
                meter = CpuMeter(**pids)
                times.append(creates(cp.custom, ns, f"r{r}", args.creates, args.workers))
                for k, v in meter.stop().items():
                    cpu[mode][k] = cpu[mode].get(k, 0.0) + v
                for part, (sec, n) in admission_parts(cp.server_metrics(), name).items():
                    was = parts_before.get(part, [0, 0])
                    into = parts[mode].setdefault(part, [0, 0])
                    into[0] += sec - was[0]
                    into[1] += n - was[1]
    finally:
        for item in reversed(items):
            subprocess.run(
                [cp.kubectl_path, "delete", item["kind"].lower(), item["metadata"]["name"]],
                env=cp.env,
                capture_output=True,
                check=False,
            )
        proc.terminate()
        proc.wait(timeout=20)
        for ns in (governed, plain, trivial):
            cp.core.delete_namespace(ns)

    p50, p99 = pct(latencies, 0.5) * 1000, pct(latencies, 0.99) * 1000
    o50, o99 = pct(open_latencies, 0.5) * 1000, pct(open_latencies, 0.99) * 1000
    ratios = [w / wo for w, wo in zip(with_hook, without, strict=True)]
    floor_ratios = [f / wo for f, wo in zip(floor, without, strict=True)]
    over_floor = [w / f for w, f in zip(with_hook, floor, strict=True)]
    print()
    row("figure", "value", "target")
    row(f"direct, closed loop ({args.concurrency} in flight): reviews", f"{len(latencies)}")
    row("direct, closed loop: p50 latency (ms)", f"{p50:.1f}", "<= 5")
    row("direct, closed loop: p99 latency (ms)", f"{p99:.1f}", "<= 25")
    row("direct, closed loop: reviews answered per second", f"{direct_rate:.0f}")
    row(
        f"direct, open loop ({args.open_rate:g}/s, <= {args.concurrency} conns): reviews/s",
        f"{open_rate:.0f}",
    )
    row("direct, open loop: p50 latency (ms, from when due)", f"{o50:.1f}", "<= 5")
    row("direct, open loop: p99 latency (ms, from when due)", f"{o99:.1f}", "<= 25")
    for q in (0.5, 0.99):
        label = f"webhook's own decision time p{int(q * 100)} (ms, bucket bound)"
        row(label, f"{server_quantile(metrics, q) * 1000:.1f}")
    row("webhook process CPU per review, closed loop (ms)", f"{webhook_cpu * 1000:.2f}")
    total = args.creates * args.rounds
    row("what governs the namespace (--mode)", args.mode)
    for mode in ("without", "floor", "with"):
        used = cpu[mode]
        if "api" in used:
            server = (used["api"] + used["etcd"]) / total * 1000
            what = "under a trivial policy" if mode == "floor" else f"{mode} the webhook"
            row(f"CPU ms per create {what}: API server + etcd", f"{server:.2f}")
        if mode == "with":
            row(
                "CPU ms per create with the webhook: the webhook",
                f"{used['webhook'] / total * 1000:.2f}",
            )
    row(
        f"creates/s without the webhook (median of {args.rounds} rounds)",
        f"{args.creates / statistics.median(without):.1f}",
    )
    row(
        f"creates/s with the webhook (median of {args.rounds} rounds)",
        f"{args.creates / statistics.median(with_hook):.1f}",
    )
    row(
        "with/without time ratio per round",
        "",
        " ".join(f"{r:.2f}" for r in ratios),
    )
    row(
        "creates with the webhook take x as long (median of rounds)",
        f"{statistics.median(ratios):.2f}x",
        "<= 1.15x",
    )
    row(
        "creates under a trivial policy take x as long (median of rounds)",
        f"{statistics.median(floor_ratios):.2f}x",
        "the floor of any policy",
    )
    row(
        "creates with ours take x as long as under the trivial policy",
        f"{statistics.median(over_floor):.2f}x",
    )
    if "api" in cpu["with"] and cpu["without"].get("api"):
        row(
            "API server CPU per create, with / without",
            f"{cpu['with']['api'] / cpu['without']['api']:.2f}x",
        )
    print()
    print(f"the API server's admission time per create ({total} creates each), by part:")
    print("  wall ms inside the API server, parts of 0.005 ms or more")
    for mode, what in (("without", "without"), ("floor", "trivial policy"), ("with", "ours")):
        for part, (sec, n) in sorted(parts[mode].items()):
            if n and sec / total >= 0.000005:
                row(f"  {what}: {part}"[:60], f"{sec / total * 1000:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
