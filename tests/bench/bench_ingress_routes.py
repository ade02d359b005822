"""Benchmark: the ingress's CPU per delivery with 20 filtered, templated routes against
today's single implicit route, in one run.

Run with ``make bench`` (or alone: ``.venv/bin/python tests/bench/bench_ingress_routes.py``).
Prints figures with their targets beside them; asserts nothing (the machine is shared).

* floor: a namespace with no routes (``spec.defaults`` and the built-in events: the
  implicit route, which renders the built-in review task).
* routes: a namespace with 20 routes for ``pull_request.opened``, each with a CEL filter
  over the payload and the headers and a task template; only the last one's filter holds,
  so every delivery evaluates 20 filters and renders one task (the worst case of "first
  match decides").

Both take the same signed pull_request.opened deliveries (the octokit example) through
one ``python -m ambient.webhooks.ingress`` process backed by the local API server, in
rounds alternating ABBA; the figure is the ingress process's CPU seconds per delivery
(user + system, psutil), which the rest of a shared machine's load does not inflate the
way it does latency. Target (issue 15): routes / floor <= 1.3x. Also printed, for where
the time goes: the pure decision alone (``rules.decide``) in this process, both ways.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
import uuid
from typing import Any

from bench_ingress import BODY, FRAMEWORK, SECRET, closed_loop, wait_ready
from support import (
    ROOT,
    ControlPlane,
    CpuMeter,
    control_plane,
    free_port,
    github_tenant,
    say,
    start_ingress,
)

from ambient.webhooks.ingress import replay, rules

ROUTES = 20


def routes() -> list[dict[str, Any]]:
    """20 routes of pull_request.opened; only the last one's filter holds for the example
    (its base branch is master)."""
    out = []
    for i in range(ROUTES):
        branch = "master" if i == ROUTES - 1 else f"release-{i}"
        out.append(
            {
                "name": f"route-{i}",
                "source": "github",
                "events": ["pull_request.opened"],
                "filter": f'body.pull_request.base.ref == "{branch}" '
                '&& headers["x-github-event"] == "pull_request" '
                "&& body.pull_request.draft == false",
                "task": f"[{i}] Review {{{{ body.pull_request.html_url }}}}: "
                "{{ body.pull_request.title }} ({{ body.repository.full_name }}, "
                "{{ body.pull_request.head.ref }} into {{ body.pull_request.base.ref }})",
                "config": {"label": "{{ body.repository.name }}-{{ body.number }}"},
            }
        )
    return out


def tenant(cp: ControlPlane, ns: str, with_routes: bool) -> str:
    cp.core.create_namespace({"metadata": {"name": ns}})
    key = github_tenant(cp.core, cp.custom, ns, SECRET, FRAMEWORK, cap=10_000)
    if with_routes:
        cp.custom.patch_namespaced_custom_object(
            "ambient.ai",
            "v1alpha1",
            ns,
            "namespacepolicies",
            "policy",
            {"spec": {"ingress": {"routes": routes()}}},
        )
    return key


def pure(n: int) -> tuple[float, float]:
    """CPU seconds per decision of rules.decide alone: (implicit, 20 routes)."""
    headers = {
        "content-type": "application/json",
        "x-github-event": "pull_request",
        "x-github-delivery": "d",
        "x-hub-signature-256": "-",
    }
    spec: dict[str, Any] = {"defaults": {"framework": FRAMEWORK}}
    plain = replay.tenant_of("a", spec)
    routed = replay.tenant_of("b", {**spec, "ingress": {"routes": routes()}})
    assert rules.decide(routed, "github", headers, BODY, "application/json").manifest
    out = []
    for tenant in (plain, routed):
        start = time.process_time()
        for _ in range(n):
            rules.decide(tenant, "github", headers, BODY, "application/json")
        out.append((time.process_time() - start) / n)
    return out[0], out[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-n", type=int, default=1200, help="deliveries per kind, in all rounds")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--concurrency", type=int, default=50)
    args = parser.parse_args()

    floor_pure, routes_pure = pure(300)
    cp = control_plane(args.concurrency)
    cp.settle()
    run = uuid.uuid4().hex[:6]
    names = {"floor": f"bench-implicit-{run}", "routes": f"bench-routes-{run}"}
    keys = {kind: tenant(cp, ns, kind == "routes") for kind, ns in names.items()}
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log_dir = (ROOT / ".run").resolve()
    log_dir.mkdir(exist_ok=True)
    with (log_dir / "bench-ingress-routes.log").open("wb") as out:
        ingress = start_ingress(cp.env, port, out, RATE_PER_SECOND="100000", RATE_BURST="100000")
    try:
        for key in keys.values():
            wait_ready(url, key)
        for key in keys.values():  # warm both paths (connections, caches)
            ids = [str(uuid.uuid4()) for _ in range(100)]
            asyncio.run(closed_loop(f"{url}/webhooks/github/{key}", ids, args.concurrency))
        chunk = args.n // args.rounds
        per: dict[str, list[float]] = {"floor": [], "routes": []}
        codes: dict[str, dict[int, int]] = {"floor": {}, "routes": {}}
        for r in range(args.rounds):
            order = ("floor", "routes") if r % 2 == 0 else ("routes", "floor")
            say(f"round {r + 1}: {chunk} deliveries each, {' then '.join(order)}")
            for kind in order:
                ids = [str(uuid.uuid4()) for _ in range(chunk)]
                meter = CpuMeter(ingress=ingress.pid)
                got = asyncio.run(
                    closed_loop(f"{url}/webhooks/github/{keys[kind]}", ids, args.concurrency)
                )
                per[kind].append(meter.stop()["ingress"] / chunk)
                for code, count in got.codes.items():
                    codes[kind][code] = codes[kind].get(code, 0) + count
    finally:
        ingress.terminate()
        ingress.wait(timeout=20)
        for ns in names.values():  # thousands of Sessions would load what runs next
            cp.core.delete_namespace(ns)

    ratios = [b / a for a, b in zip(per["floor"], per["routes"], strict=True)]
    print()
    print(f"answers: implicit {codes['floor']}, 20 routes {codes['routes']}")
    print(
        f"ingress CPU per delivery: implicit route {statistics.median(per['floor']) * 1e3:.2f} ms,"
        f" 20 routes (filter + template each) {statistics.median(per['routes']) * 1e3:.2f} ms"
    )
    print(
        f"ratio 20 routes / implicit: {statistics.median(ratios):.2f}x "
        f"(median of {len(ratios)} rounds; target <= 1.3x)"
    )
    print(
        f"the decision alone (rules.decide, in-process): implicit {floor_pure * 1e3:.3f} ms, "
        f"20 routes {routes_pure * 1e3:.3f} ms"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
