"""Faults close safely, shown live (issue 17, deliverable 2): each fault is made real on
the running local control plane, and each test restores what it stopped.

- the admission webhook process killed: Session writes are refused (failurePolicy Fail)
  and history stays append-only (CEL), then writes work again once it is back;
- the API server stopped: a signed delivery gets 503, and the same delivery after the API
  server is back creates exactly one Session;
- the object store stopped: a large delivery gets 503 StoreUnavailable (the answer says
  it was not stored) and nothing is created; after the store is back the same delivery is
  stored and creates exactly one Session, and what was stored before is still there.
"""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import sys
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from controlplane import probes, processes
from controlplane.settings import Settings
from kubernetes.client.exceptions import ApiException
from moto.server import ThreadedMotoServer

from ambient.webhooks.admission.registration import webhook_configuration

from .conftest import free_port, tls_files
from .test_ingress_sessions import PR_OPENED, github, sessions, tenant, wait_indexed

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
LABEL = "ambient.ai/faults-test"
IN_OBJECT = 256 * 1024


def _session(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "ambient.ai/v1alpha1",
        "kind": "Session",
        "metadata": {"name": name},
        "spec": {
            "trigger": {"source": "manual", "event": "test", "payload": {}},
            "framework": {"type": "script", "config": {"command": ["true"]}},
            "policy": {"modelConstraints": {"allowed": ["claude-3-sonnet"], "budget": "1.00"}},
        },
    }


class Webhook:
    """The real admission webhook process on a fixed port, which a test can kill and
    start again."""

    def __init__(self, cluster: Any, tmp: Path) -> None:
        self.cluster = cluster
        self.tmp = tmp
        self.ca, self.cert, self.key = tls_files(tmp)
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        pki = Path(cluster.kubeconfig).parent / "pki"
        self.client_ca = pki / "webhook-client-ca.crt"
        self.tls = ssl.create_default_context(cafile=str(self.ca))
        self.tls.load_cert_chain(pki / "webhook-client.crt", pki / "webhook-client.key")

    def start(self) -> None:
        log = (self.tmp / "webhook.log").open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "ambient.webhooks.admission"],
            env={
                **self.cluster.env,
                "AMBIENT_ADMISSION_CERT_FILE": str(self.cert),
                "AMBIENT_ADMISSION_KEY_FILE": str(self.key),
                "AMBIENT_ADMISSION_HOST": "127.0.0.1",
                "AMBIENT_ADMISSION_PORT": str(self.port),
                "AMBIENT_ADMISSION_OPERATOR_USERNAMES": "kubernetes-admin",
                "AMBIENT_ADMISSION_CLIENT_CA_FILE": str(self.client_ca),
            },
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self.cluster.wait_for("the webhook to be ready", self.ready, timeout=30)

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(
                f"https://127.0.0.1:{self.port}/readyz", context=self.tls, timeout=2
            ) as rsp:
                return bool(rsp.status == 200)
        except OSError:
            return False

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(timeout=20)
            self.proc = None


@pytest.fixture
def webhook(cluster: Any, tmp_path: Path) -> Iterator[tuple[Webhook, str]]:
    """A running webhook registered for one namespace with a permissive policy."""
    hook = Webhook(cluster, tmp_path)
    hook.start()
    run = uuid.uuid4().hex[:8]
    name = f"ambient-faults-test-{run}"
    cluster.apply(
        webhook_configuration(
            hook.ca.read_bytes(),
            url=f"https://127.0.0.1:{hook.port}/validate",
            name=name,
            match_labels={LABEL: run},
        )
    )
    namespace = f"faults-{run}"
    cluster.core.create_namespace({"metadata": {"name": namespace, "labels": {LABEL: run}}})
    policy = {
        "apiVersion": "ambient.ai/v1alpha1",
        "kind": "NamespacePolicy",
        "metadata": {"name": "policy"},
        "spec": {"models": {"allowed": ["claude-3-sonnet"]}},
    }
    cluster.wait_for("the policy to be admitted", lambda: cluster.apply(policy, namespace) or True)
    try:
        yield hook, namespace
    finally:
        cluster.kubectl("delete", "validatingwebhookconfiguration", name, "--ignore-not-found")
        hook.kill()
        cluster.kubectl("delete", "namespace", namespace, "--wait=false", check=False)


def _create(cluster: Any, namespace: str, name: str) -> Any:
    return cluster.kubectl(
        "create", "-n", namespace, "-f", "-", stdin=json.dumps(_session(name)), check=False
    )


def test_with_the_webhook_down_writes_are_refused_and_history_stays_append_only(
    cluster: Any, webhook: tuple[Webhook, str], operator: Any
) -> None:
    hook, namespace = webhook
    assert _create(cluster, namespace, "before").returncode == 0
    seed = cluster.wait_phase(namespace, "before", "Completed")["status"]["history"]
    hook.kill()
    refused = _create(cluster, namespace, "during")
    assert refused.returncode != 0 and "failed calling webhook" in refused.stderr
    spec = cluster.kubectl(
        "patch", "session", "before", "-n", namespace, "--type=merge",
        "-p", json.dumps({"metadata": {"annotations": {"x": "y"}}}), check=False,
    )  # fmt: skip
    assert spec.returncode != 0 and "failed calling webhook" in spec.stderr
    # The API server checks CEL before it calls webhooks: a rewrite is refused by the CRD.
    for attack in (
        {"status": {"history": [{**seed[0], "event": "Rewritten"}, *seed[1:]]}},
        {"status": {"history": seed[1:]}},
    ):
        with pytest.raises(ApiException) as err:
            cluster.custom.patch_namespaced_custom_object_status(
                "ambient.ai", "v1alpha1", namespace, "sessions", "before", attack
            )
        assert err.value.status == 422, err.value.body
    dropped = cluster.kubectl(
        "patch", "session", "before", "-n", namespace, "--subresource=status", "--type=json",
        "-p", json.dumps([{"op": "remove", "path": "/status"}]), check=False,
    )  # fmt: skip
    assert dropped.returncode != 0
    assert "during" not in cluster.kubectl("get", "sessions", "-n", namespace).stdout
    assert cluster.session(namespace, "before")["status"]["history"] == seed
    hook.start()
    cluster.wait_for(
        "writes to work again", lambda: _create(cluster, namespace, "after").returncode == 0
    )


# --- the API server stopped ---------------------------------------------------------------


@pytest.fixture
def apiserver(cluster: Any) -> Iterator[tuple[Settings, Any]]:
    """The running control plane's kube-apiserver, which the test may stop; always
    running again (and ready) when the test ends."""
    settings = Settings.from_env(os.environ)

    def start() -> None:
        if processes.running_pid(settings, "kube-apiserver") is None:
            processes.start(settings, "kube-apiserver")
        probes.wait_for(
            "kube-apiserver",
            probes.health_check(settings, "kube-apiserver"),
            settings,
            ["kube-apiserver"],
        )

    assert processes.running_pid(settings, "kube-apiserver") is not None, (
        "the API server is not the one hack/cluster.py started (AMBIENT_* not exported?)"
    )
    try:
        yield settings, start
    finally:
        start()


def _ingress(cluster: Any, tmp: Path, env: dict[str, str]) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    log = (tmp / f"ingress-{port}.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "ambient.webhooks.ingress"],
        env={
            **cluster.env,
            "AMBIENT_INGRESS_HOST": "127.0.0.1",
            "AMBIENT_INGRESS_PORT": str(port),
            "AMBIENT_INGRESS_MAX_BODY_BYTES": str(IN_OBJECT),
            "AMBIENT_INGRESS_REQUEST_TIMEOUT_SECONDS": "10",
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test",
            **env,
        },
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=ROOT,
    )
    url = f"http://127.0.0.1:{port}"
    cluster.wait_for("ingress ready", lambda: httpx.get(f"{url}/readyz").status_code == 200, 60)
    return proc, url


def test_with_the_api_server_stopped_a_delivery_is_503_and_its_retry_creates_one_session(
    cluster: Any, namespace: str, apiserver: tuple[Settings, Any], tmp_path: Path
) -> None:
    settings, start = apiserver
    proc, url = _ingress(cluster, tmp_path, {})
    try:
        keys = tenant(cluster, namespace)
        wait_indexed(cluster, url, keys["github"])
        delivery = str(uuid.uuid4())
        processes.stop(settings, "kube-apiserver")
        down = github(url, keys["github"], PR_OPENED, delivery)
        assert down.status_code == 503, down.text
        assert down.json()["trace_id"] and "retry-after" in down.headers
        start()
        retried = cluster.wait_for(
            "the retry to be accepted",
            lambda: (r := github(url, keys["github"], PR_OPENED, delivery)).status_code < 500 and r,
            timeout=60,
            interval=1,
        )
        assert retried.status_code == 202, retried.text
        again = github(url, keys["github"], PR_OPENED, delivery)
        assert again.status_code == 200 and again.json() == retried.json()
        assert [s["metadata"]["name"] for s in sessions(cluster, namespace)] == [
            retried.json()["session"]
        ]
    finally:
        proc.terminate()
        proc.wait(timeout=20)


# --- the store stopped --------------------------------------------------------------------


def test_with_the_store_down_a_large_delivery_is_refused_and_nothing_is_lost(
    cluster: Any, namespace: str, tmp_path: Path
) -> None:
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    store = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    store.start()
    bucket = f"faults-{uuid.uuid4().hex[:8]}"
    s3 = boto3.client(
        "s3", endpoint_url=endpoint, region_name="us-east-1",
        aws_access_key_id="test", aws_secret_access_key="test",
    )  # fmt: skip
    s3.create_bucket(Bucket=bucket)
    proc, url = _ingress(
        cluster,
        tmp_path,
        {"AMBIENT_STORE_BUCKET": bucket, "AMBIENT_STORE_ENDPOINT_URL": endpoint},
    )
    try:
        keys = tenant(cluster, namespace)
        wait_indexed(cluster, url, keys["github"])
        large = {**PR_OPENED, "pad": "x" * (IN_OBJECT + 1)}
        first = github(url, keys["github"], large, str(uuid.uuid4()))
        assert first.status_code == 202, first.text
        stored = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", []))
        assert stored
        store.stop()
        delivery = str(uuid.uuid4())
        # Another delivery (another body: GitHub Sessions are named by the body's digest).
        large = {**large, "attempt": "second"}
        down = github(url, keys["github"], large, delivery)
        assert down.status_code == 503, down.text
        assert down.json()["error_code"] == "StoreUnavailable" and "retry-after" in down.headers
        assert len(sessions(cluster, namespace)) == 1
        store = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        store.start()
        retried = github(url, keys["github"], large, delivery)
        assert retried.status_code == 202, retried.text
        names = sorted(s["metadata"]["name"] for s in sessions(cluster, namespace))
        assert names == sorted([first.json()["session"], retried.json()["session"]])
        after = {o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])}
        assert set(stored) <= after and len(after) > len(stored)
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        store.stop()
