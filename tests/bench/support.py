"""What every benchmark starts with: the local control plane, the CRDs, API clients.

The bench scripts run as plain files (``python tests/bench/bench_x.py``), so they import
this as ``support`` from their own folder.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import psutil
from kubernetes import client, config

ROOT = Path(__file__).resolve().parents[2]
CLUSTER = [sys.executable, str(ROOT / "hack" / "cluster.py")]
# The benchmarks' own control plane (state and ports), started empty by each bench.
os.environ["AMBIENT_CLUSTER_PROFILE"] = "bench"
METADATA_ONLY = {"Accept": "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"}


def say(message: str) -> None:
    print(f"==> [{time.strftime('%H:%M:%S')}] {message}", flush=True)


def go_harness(directory: Path, name: str) -> Path:
    """A Go harness beside the benches (``directory`` holds its main.go, go.mod and
    go.sum), built into ~/.cache/ambient/bin when its sources changed."""
    digest = hashlib.sha256()
    for part in ("main.go", "go.mod", "go.sum"):
        digest.update((directory / part).read_bytes())
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "ambient" / "bin"
    binary = cache / f"{name}-{digest.hexdigest()[:12]}"
    if not binary.exists():
        say(f"building {directory.name} into {binary} (the first time takes minutes)")
        cache.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "GOFLAGS": "-mod=mod", "CGO_ENABLED": "0"}
        built = subprocess.run(
            ["go", "build", "-o", str(binary), "."], cwd=directory, env=env, check=False
        )
        if built.returncode != 0:
            raise SystemExit(
                f"`go build` of {directory} failed (above); it needs Go and the Go module "
                "proxy, as the control plane's build does"
            )
    return binary


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def github_tenant(
    core: Any, custom: Any, ns: str, secret: str, framework: dict[str, Any], *, cap: int = 50
) -> str:
    """Make namespace ``ns`` take GitHub deliveries signed with ``secret`` (a signing Secret
    and a NamespacePolicy running at most ``cap`` Sessions at once); return its new API key."""
    key = uuid.uuid4().hex
    core.create_namespaced_secret(
        ns,
        {
            "metadata": {"name": "signing"},
            "data": {"github": base64.b64encode(secret.encode()).decode()},
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
                "defaults": {"framework": framework},
                "ingress": {"github": {}},
                "maxConcurrentSessions": cap,
            },
        },
    )
    return key


def start_ingress(
    env: dict[str, str], port: int, out: IO[bytes] | int, **settings: str
) -> subprocess.Popen[bytes]:
    """``python -m ambient.webhooks.ingress`` on 127.0.0.1:``port``; ``settings`` are extra
    AMBIENT_INGRESS_* variables (RATE_BURST="100000" sets AMBIENT_INGRESS_RATE_BURST)."""
    extra = {f"AMBIENT_INGRESS_{name}": value for name, value in settings.items()}
    return subprocess.Popen(
        [sys.executable, "-m", "ambient.webhooks.ingress"],
        env={
            **env,
            "AMBIENT_INGRESS_HOST": "127.0.0.1",
            "AMBIENT_INGRESS_PORT": str(port),
            **extra,
        },
        stdout=out,
        stderr=subprocess.STDOUT,
        cwd=ROOT,
    )


def pct(values: list[float], q: float) -> float:
    """The q-quantile (0..1) of values, nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class CpuMeter:
    """CPU seconds (user + system) that named processes spent between start() and stop():
    a figure the other work on a shared machine does not inflate the way it does latency.
    Processes whose pid is None (not local) are left out."""

    def __init__(self, **pids: int | None) -> None:
        self.procs = {name: psutil.Process(p) for name, p in pids.items() if p is not None}
        self.start()

    def _now(self) -> dict[str, float]:
        return {name: sum(p.cpu_times()[:2]) for name, p in self.procs.items()}

    def start(self) -> None:
        self._start = self._now()

    def stop(self) -> dict[str, float]:
        now = self._now()
        return {name: now[name] - self._start[name] for name in now}


def py_spy(pid: int, out: Path, seconds: int) -> subprocess.Popen[bytes]:
    """Sample process ``pid`` for ``seconds`` with py-spy (a dev dependency) into ``out``:
    collapsed stacks, one line per stack with its sample count (flamegraph.pl or
    speedscope read it)."""
    tool = str(Path(sys.executable).with_name("py-spy"))
    cmd = [tool, "record", "--pid", str(pid), "--duration", str(seconds), "--format", "raw"]
    return subprocess.Popen(
        [*cmd, "--nonblocking", "-o", str(out)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


@dataclass
class ControlPlane:
    """The running local control plane, its CRDs applied, and clients for it."""

    kubeconfig: str
    kubectl_path: str
    env: dict[str, str]
    """This process's environment with KUBECONFIG pointing at the control plane."""
    api: client.ApiClient
    core: client.CoreV1Api
    custom: client.CustomObjectsApi
    batch: client.BatchV1Api

    def pid(self, component: str) -> int | None:
        """The process id of a control-plane component (e.g. kube-apiserver), if local."""
        path = Path(self.kubeconfig).parent / "run" / f"{component}.pid"
        return int(path.read_text().strip()) if path.is_file() else None

    def settle(self, timeout: float = 300) -> None:
        """Wait (bounded) until no namespace is being deleted: deleting an earlier run's
        Sessions loads the API server, which would count against this run."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            left = [
                ns.metadata.name
                for ns in self.core.list_namespace().items
                if ns.status and ns.status.phase == "Terminating"
            ]
            if not left:
                return
            say(f"waiting for {len(left)} namespaces being deleted: {', '.join(left[:3])}")
            time.sleep(10)

    def metadata(self, path: str, field_selector: str | None = None) -> list[dict[str, Any]]:
        """The objects of a collection, metadata only, from the watch cache and filtered
        server-side where a field selector can: counting by listing whole objects every
        second would load the API server (and the bench) more than the work measured."""
        return self._list(path, field_selector, METADATA_ONLY)

    def jobs_completed_after(self, path: str, prefix: str, since: float) -> float | None:
        """Seconds from ``since`` (a ``time.time()``) until the last Job of the namespaces
        named ``prefix``... completed, by the Job controller's own ``completionTime`` (to
        the second, which it keeps); None unless every such Job has one. Read once, after
        the phase is measured, so the operator's side pays no poll the floor does not."""
        items = self._list(path)
        return last_completion(
            [i for i in items if i["metadata"]["namespace"].startswith(prefix)], since
        )

    def _list(
        self, path: str, field_selector: str | None = None, headers: dict[str, str] | None = None
    ) -> list[dict[str, Any]]:
        """A collection from the watch cache, as plain dicts (no client models)."""
        query = [("resourceVersion", "0")]
        if field_selector:
            query.append(("fieldSelector", field_selector))
        response = self.api.call_api(
            path,
            "GET",
            query_params=query,
            header_params=headers or {},
            auth_settings=["BearerToken"],
            _preload_content=False,
        )
        return list(json.loads(response[0].data)["items"] or [])

    def server_metrics(self) -> str:
        return server_metrics(self.api)

    def kubectl(self, *args: str, stdin: str | None = None) -> None:
        subprocess.run(
            [self.kubectl_path, *args],
            env=self.env,
            input=stdin,
            text=True,
            check=True,
            capture_output=True,
        )


def server_metrics(api: client.ApiClient) -> str:
    """The API server's own /metrics (Prometheus text)."""
    response = api.call_api(
        "/metrics", "GET", auth_settings=["BearerToken"], _preload_content=False
    )
    return str(response[0].data.decode())


def control_plane(connections: int) -> ControlPlane:
    """Start the benchmarks' local control plane empty (or reuse AMBIENT_CLUSTER_DIR's when
    it is set), apply the CRDs, and return clients whose connection pool holds
    ``connections`` (the benchmark's concurrency)."""
    say("local control plane")
    if "AMBIENT_CLUSTER_DIR" not in os.environ:
        # Empty each time: objects another bench left (1,000 Sessions, say) would be
        # resumed by this bench's operator and measured as this bench's work.
        subprocess.run([*CLUSTER, "down", "--purge"], stdout=subprocess.DEVNULL, check=True)
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
    cfg.connection_pool_maxsize = connections
    api = client.ApiClient(cfg)
    return ControlPlane(
        kubeconfig,
        kubectl,
        env,
        api,
        client.CoreV1Api(api),
        client.CustomObjectsApi(api),
        client.BatchV1Api(api),
    )


def last_completion(jobs: list[dict[str, Any]], since: float) -> float | None:
    """Seconds from ``since`` until the latest ``status.completionTime`` of ``jobs``; None
    when there are none or one has not completed."""
    times = [(j.get("status") or {}).get("completionTime") for j in jobs]
    if not times or None in times:
        return None
    latest = max(
        datetime.strptime(t, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()
        for t in times
        if t is not None
    )
    return latest - since
