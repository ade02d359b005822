"""Shared fixtures: the real local control plane, the CRDs, and the operator process.

The control plane is started (or a running one reused) once per test run by
``hack/cluster.py up``; tests that need it ask for the ``cluster`` fixture, directly or
through ``operator`` or ``namespace``. Unit tests never touch it. It is the ``test``
profile's (its own state and ports): whatever `make run` or a benchmark left in theirs
never reaches the tests' operator, which watches every namespace. `make test` starts it
afresh.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config

ROOT = Path(__file__).resolve().parent.parent
CLUSTER = [sys.executable, str(ROOT / "hack" / "cluster.py")]
# Set before any fixture runs, so every child (hack/run.py in the e2e test) inherits it.
os.environ.setdefault("AMBIENT_CLUSTER_PROFILE", "test")


class Cluster:
    """A kubeconfig and the kubectl built for it, plus a Python client."""

    def __init__(self, kubeconfig: str, kubectl: str) -> None:
        self.kubeconfig = kubeconfig
        self.kubectl_bin = kubectl
        api = config.new_client_from_config(config_file=kubeconfig)
        self.api = api
        self.custom = client.CustomObjectsApi(api)
        self.batch = client.BatchV1Api(api)
        self.coordination = client.CoordinationV1Api(api)
        self.core = client.CoreV1Api(api)

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "KUBECONFIG": self.kubeconfig}

    def kubectl(
        self, *args: str, stdin: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """Run the real kubectl; on failure the assertion shows its stderr."""
        proc = subprocess.run(
            [self.kubectl_bin, *args],
            check=False,
            input=stdin,
            capture_output=True,
            text=True,
            env=self.env,
            timeout=120,
        )
        if check:
            assert proc.returncode == 0, f"kubectl {' '.join(args)} failed: {proc.stderr}"
        return proc

    def apply(self, manifest: dict[str, Any] | str, namespace: str | None = None) -> None:
        text = manifest if isinstance(manifest, str) else json.dumps(manifest)
        args = ["apply", "-f", "-"] + (["-n", namespace] if namespace else [])
        self.kubectl(*args, stdin=text)

    def session(self, namespace: str, name: str) -> dict[str, Any]:
        result: dict[str, Any] = self.custom.get_namespaced_custom_object(
            "ambient.ai", "v1alpha1", namespace, "sessions", name
        )
        return result

    def jobs(self, namespace: str, selector: str = "ambient.ai/session") -> list[Any]:
        return list(self.batch.list_namespaced_job(namespace, label_selector=selector).items)

    def wait_for(
        self,
        what: str,
        check: Callable[[], Any],
        timeout: float = 90,
        interval: float = 0.25,
    ) -> Any:
        """Poll until check() returns something truthy; fail with what was awaited."""
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            try:
                last = check()
            except Exception as exc:  # keep polling through transient errors
                last = exc
            if last and not isinstance(last, Exception):
                return last
            time.sleep(interval)
        raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {last!r}")

    def wait_phase(
        self, namespace: str, name: str, phase: str, timeout: float = 90
    ) -> dict[str, Any]:
        def check() -> dict[str, Any] | None:
            body = self.session(namespace, name)
            return body if body.get("status", {}).get("phase") == phase else None

        result: dict[str, Any] = self.wait_for(
            f"Session {namespace}/{name} {phase}", check, timeout
        )
        return result


@pytest.fixture(scope="session")
def cluster() -> Cluster:
    """The real control plane: started once per run, or reused when already up."""
    proc = subprocess.run(
        [*CLUSTER, "up"], check=False, capture_output=True, text=True, timeout=3600
    )
    if proc.returncode != 0:
        pytest.fail(
            f"the local control plane did not start:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        )
    kubeconfig = proc.stdout.strip().splitlines()[-1]
    kubectl = subprocess.run(
        [*CLUSTER, "bin", "kubectl"], capture_output=True, text=True, check=True
    ).stdout.strip()
    c = Cluster(kubeconfig, kubectl)
    c.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(ROOT / "crds"))
    for crd in ("sessions.ambient.ai", "namespacepolicies.ambient.ai"):
        c.kubectl("wait", "--for=condition=Established", f"crd/{crd}", "--timeout=60s")
    return c


class OperatorProcess:
    """The operator as a real process, so tests can SIGKILL and restart it."""

    def __init__(self, cluster: Cluster, log_dir: Path) -> None:
        self.cluster = cluster
        self.log_dir = log_dir
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self, extra_env: dict[str, str] | None = None) -> None:
        self.starts += 1
        log = (self.log_dir / f"operator-{self.starts}.log").open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "ambient.operator", "--liveness", ""],
            # Tests run several operators over a run: no fixed metrics port unless asked.
            env={**self.cluster.env, "AMBIENT_METRICS_PORT": "0", **(extra_env or {})},
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )

    def kill(self) -> None:
        """SIGKILL: no cleanup, as a crash or an OOM kill would do."""
        if self.proc is not None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=30)
            self.proc = None

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
            self.proc = None

    def logs(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in sorted(self.log_dir.glob("*.log")))


@pytest.fixture(scope="session")
def operator(
    cluster: Cluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    """One operator for the run; tests that kill it restart it before they end."""
    proc = OperatorProcess(cluster, tmp_path_factory.mktemp("operator"))
    proc.start()
    yield proc
    proc.stop()


@pytest.fixture
def make_operator(
    cluster: Cluster, tmp_path_factory: pytest.TempPathFactory
) -> Callable[[str], OperatorProcess]:
    """More operator processes (replicas), each logging to a directory of its name."""
    return lambda name: OperatorProcess(cluster, tmp_path_factory.mktemp(name, numbered=False))


@pytest.fixture
def namespace(cluster: Cluster) -> Iterator[str]:
    """A fresh namespace per test, deleted afterwards (without waiting)."""
    name = f"t-{uuid.uuid4().hex[:10]}"
    cluster.core.create_namespace({"metadata": {"name": name}})
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


def session_manifest(
    name: str,
    *,
    framework: str = "script",
    annotations: dict[str, str] | None = None,
    approval: bool = False,
    payload: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A minimal valid Session."""
    return {
        "apiVersion": "ambient.ai/v1alpha1",
        "kind": "Session",
        "metadata": {"name": name, "annotations": annotations or {}},
        "spec": {
            "trigger": {"source": "manual", "event": "test", "payload": payload or {"n": 1}},
            "framework": {"type": framework, "config": {"command": ["true"]}},
            "policy": {"approvalRequired": approval},
        },
    }


@pytest.fixture
def make_session() -> Callable[..., dict[str, Any]]:
    """Factory for Session manifests (see ``session_manifest``)."""
    return session_manifest
