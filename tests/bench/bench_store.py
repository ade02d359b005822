"""Benchmark: what the artifact store costs (large payloads, history archival).

Run with ``make bench`` (or alone: ``.venv/bin/python tests/bench/bench_store.py``). Prints
figures, never asserts on time (the machine is shared). Uses the local control plane and
moto's S3 server in-process.

* ingress: signed GitHub deliveries of growing size through ``python -m
  ambient.webhooks.ingress`` with a store: median acknowledgement time per size (inline
  up to 256 KiB, stored above) and the ingress's peak RSS.
* status writes: the time of one status update (append one entry) with a window of 900
  entries and no archives, against the same window after 1,000 archive records: what the
  CEL rules over status.historyArchives cost the API server.
* archival: with the operator running and a store, the time from the write that takes a
  Session's window to 900 entries to the status that records the archive.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import logging
import os
import statistics
import subprocess
import sys
import threading
import time
import uuid
from typing import Any

import boto3
import httpx
import psutil
from moto.server import ThreadedMotoServer
from support import ROOT, control_plane, free_port, github_tenant, say, start_ingress

PAYLOAD = json.loads((ROOT / "tests/fixtures/github/pull_request.opened.json").read_text())
SECRET = "bench-signing-secret"
GROUP, VERSION = "ambient.ai", "v1alpha1"
SIZES = [100 * 1024, 1024 * 1024, 3 * 1024 * 1024, 10 * 1024 * 1024, 24 * 1024 * 1024]


def entry(seq: int) -> dict[str, Any]:
    return {
        "seq": seq,
        "id": f"runner:bench/{seq}",
        "timestamp": "2026-03-01T00:00:00Z",
        "event": "Progress",
        "data": {"step": str(seq)},
    }


CREATED: list[str] = []
"""This run's namespaces, deleted at the end (later runs wait for deletions to finish)."""


def new_namespace(core: Any, ns: str) -> None:
    core.create_namespace({"metadata": {"name": ns}})
    CREATED.append(ns)


def tenant(core: Any, custom: Any, ns: str) -> str:
    new_namespace(core, ns)
    framework = {"type": "script", "config": {"command": ["true"]}}
    return github_tenant(core, custom, ns, SECRET, framework)


def post(url: str, key: str, body: bytes, delivery: str, event: str = "pull_request") -> int:
    sig = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    resp = httpx.post(
        f"{url}/webhooks/github/{key}",
        content=body,
        timeout=60,
        headers={
            "Content-Type": "application/json",
            "X-GitHub-Event": event,
            "X-GitHub-Delivery": delivery,
            "X-Hub-Signature-256": sig,
        },
    )
    return resp.status_code


class PeakRss(threading.Thread):
    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.proc = psutil.Process(pid)
        self.peak = 0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                self.peak = max(self.peak, self.proc.memory_info().rss)
            except psutil.Error:
                return
            time.sleep(0.05)


def bench_ingress(env: dict[str, str], core: Any, custom: Any, repeats: int) -> None:
    ns = f"bench-store-{uuid.uuid4().hex[:6]}"
    key = tenant(core, custom, ns)
    port = free_port()
    proc = start_ingress(
        env, port, subprocess.DEVNULL, REQUEST_TIMEOUT_SECONDS="60", LOG_LEVEL="WARNING"
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if post(url, key, b"{}", "ping", "ping") == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        rss = PeakRss(proc.pid)
        rss.start()
        idle = psutil.Process(proc.pid).memory_info().rss
        rows = []
        for size in SIZES:
            times, codes = [], set()
            for _ in range(repeats):
                # A body of its own each time: GitHub Sessions are named by the body (issue
                # 17, finding 5), and the same body again would be a replay, not a store.
                delivery = str(uuid.uuid4())
                body = json.dumps({**PAYLOAD, "pad": "x" * size, "bench": delivery}).encode()
                start = time.monotonic()
                codes.add(post(url, key, body, delivery))
                times.append(time.monotonic() - start)
            rows.append((size, statistics.median(times), codes))
        rss.stop.set()
        rss.join()
        inline = rows[0][1]
        print(f"{'body':>12} {'median ack (s)':>15} {'vs 100 KiB':>11}  answers", flush=True)
        for size, median, codes in rows:
            where = "inline" if size <= 256 * 1024 else "stored"
            print(
                f"{size / 1024 / 1024:9.2f} MiB {median:15.3f} {median / inline:10.1f}x  "
                f"{sorted(codes)} {where}",
                flush=True,
            )
        print(
            f"ingress RSS: idle {idle / 2**20:.0f} MiB, peak {rss.peak / 2**20:.0f} MiB "
            f"(one delivery at a time)",
            flush=True,
        )
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def put_status(custom: Any, ns: str, name: str, status: dict[str, Any]) -> float:
    body = custom.get_namespaced_custom_object(GROUP, VERSION, ns, "sessions", name)
    body["status"] = status
    start = time.monotonic()
    custom.replace_namespaced_custom_object_status(GROUP, VERSION, ns, "sessions", name, body)
    return time.monotonic() - start


def session(name: str) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Session",
        "metadata": {"name": name},
        "spec": {
            "trigger": {"source": "manual", "event": "bench"},
            "framework": {"type": "no-such-runner"},
        },
    }


def bench_status_writes(core: Any, custom: Any, writes: int) -> None:
    """Round-robin over the cases, so the shared machine's load hits each alike."""
    ns = f"bench-cel-{uuid.uuid4().hex[:6]}"
    new_namespace(core, ns)
    cases = (
        ("10-entry window", 0, 10),
        ("900-entry window, no archives", 0, 900),
        ("900-entry window, 10 archive records", 10, 900),
        ("900-entry window, 100 archive records", 100, 900),
        ("900-entry window, 1,000 archive records", 1000, 900),
    )
    state: dict[str, tuple[str, list[dict[str, Any]], list[dict[str, Any]]]] = {}
    for label, archives, size in cases:
        name = f"s-{archives}-{size}"
        custom.create_namespaced_custom_object(GROUP, VERSION, ns, "sessions", session(name))
        records = [
            {
                "fromSeq": i,
                "toSeq": i,
                "count": 1,
                "location": f"s3://bench/{ns}/{name}/uid/history/{i}-{i}.json",
                "sha256": "a" * 64,
                "archivedAt": "2026-03-01T00:00:00Z",
            }
            for i in range(archives)
        ]
        # The first status write has no old status, so it may set the records at once.
        window = [entry(i) for i in range(archives, archives + size)]
        put_status(custom, ns, name, {"history": window, "historyArchives": records})
        state[label] = (name, window, records)
    times: dict[str, list[float]] = {label: [] for label, _, _ in cases}
    for _ in range(writes):
        for label, _, _ in cases:
            name, window, records = state[label]
            window.append(entry(window[-1]["seq"] + 1))
            times[label].append(
                put_status(custom, ns, name, {"history": window, "historyArchives": records})
            )
    results = {label: statistics.median(t) for label, t in times.items()}
    base = results["900-entry window, no archives"]
    print(f"{'one entry appended per write':45} {'median write (s)':>17}", flush=True)
    for label, median in results.items():
        print(f"{label:45} {median:17.3f}   {median / base:.2f}x", flush=True)


def bench_archival(env: dict[str, str], core: Any, custom: Any, sessions: int) -> None:
    ns = f"bench-arch-{uuid.uuid4().hex[:6]}"
    new_namespace(core, ns)
    proc = subprocess.Popen(
        [sys.executable, "-m", "ambient.operator", "--liveness", ""],
        env={**env, "AMBIENT_METRICS_PORT": "0", "AMBIENT_NAMESPACES": ns},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=ROOT,
    )
    try:
        names = [f"s{i}" for i in range(sessions)]
        for name in names:
            custom.create_namespaced_custom_object(GROUP, VERSION, ns, "sessions", session(name))
        for name in names:  # wait until the operator has ended each (unknown framework)
            while (
                custom.get_namespaced_custom_object(GROUP, VERSION, ns, "sessions", name)
                .get("status", {})
                .get("phase")
                != "Failed"
            ):
                time.sleep(0.2)
        delays = []
        for name in names:
            body = custom.get_namespaced_custom_object(GROUP, VERSION, ns, "sessions", name)
            history = body["status"]["history"]
            history += [entry(i) for i in range(history[-1]["seq"] + 1, 900)]
            body["status"]["history"] = history
            start = time.monotonic()
            custom.replace_namespaced_custom_object_status(
                GROUP, VERSION, ns, "sessions", name, body
            )
            while not custom.get_namespaced_custom_object(GROUP, VERSION, ns, "sessions", name)[
                "status"
            ].get("historyArchives"):
                time.sleep(0.05)
            delays.append(time.monotonic() - start)
        print(
            f"archival of 500 entries, 900th entry written -> archive recorded: median "
            f"{statistics.median(delays):.3f} s, max {max(delays):.3f} s over {sessions} Sessions",
            flush=True,
        )
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=5, help="deliveries per size")
    parser.add_argument("--writes", type=int, default=20, help="status writes per case")
    parser.add_argument("--sessions", type=int, default=5, help="Sessions archived")
    args = parser.parse_args()

    plane = control_plane(connections=8)
    env, core, custom = plane.env, plane.core, plane.custom

    say("moto S3 server")
    port = free_port()
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's request log
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    moto.start()
    endpoint = f"http://127.0.0.1:{port}"
    store_env = {
        **env,
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AMBIENT_STORE_BUCKET": "bench",
        "AMBIENT_STORE_ENDPOINT_URL": endpoint,
    }
    os.environ.update({"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench"})
    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(Bucket="bench")
    try:
        say(f"ingress: deliveries from 100 KiB to 25 MiB, {args.repeats} of each")
        bench_ingress(store_env, core, custom, args.repeats)
        say(f"status writes: {args.writes} per case")
        bench_status_writes(core, custom, args.writes)
        say(f"archival by the operator: {args.sessions} Sessions")
        bench_archival(store_env, core, custom, args.sessions)
    finally:
        moto.stop()
        for ns in CREATED:
            core.delete_namespace(ns)
    return 0


if __name__ == "__main__":
    sys.exit(main())
