"""Names of objects a NamespacePolicy or Session names are Kubernetes names, as the real
API server enforces them (issue 17, finding 2): a Secret name such as
``../../team-alpha/secrets/x`` walked the ingress's API path into another namespace's
Secret. The API server now refuses it with a readable message and creates nothing; and
with the real ingress running, a tenant cannot have its deliveries verified with another
tenant's signing secret."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from .conftest import free_port

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
GROUP, VERSION = "ambient.ai", "v1alpha1"
WALKS_OUT = "../../{victim}/secrets/ingress-signing"


def _policy(namespace: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "NamespacePolicy",
        "metadata": {"name": "policy", "namespace": namespace},
        "spec": spec,
    }


def _policies(cluster: Any, namespace: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = cluster.custom.list_namespaced_custom_object(
        GROUP, VERSION, namespace, "namespacepolicies"
    )["items"]
    return items


def _refused(cluster: Any, namespace: str, manifest: dict[str, Any]) -> str:
    proc = cluster.kubectl(
        "apply", "-n", namespace, "-f", "-", stdin=json.dumps(manifest), check=False
    )
    assert proc.returncode != 0, proc.stdout
    return str(proc.stderr)


@pytest.mark.parametrize("ref", ["webhookAuth", "notifications"])
@pytest.mark.parametrize(
    "name", [WALKS_OUT.format(victim="team-alpha"), "..", "x/y", "Signing", "a" * 254]
)
def test_a_secret_name_that_is_not_a_kubernetes_name_is_refused(
    cluster, namespace, ref: str, name: str
) -> None:
    stderr = _refused(
        cluster, namespace, _policy(namespace, {ref: {"signingSecretRef": {"name": name}}})
    )
    assert f"spec.{ref}.signingSecretRef.name" in stderr
    assert (
        "should match" in stderr or "may not be more than 253" in stderr or ("Too long" in stderr)
    ), stderr
    assert _policies(cluster, namespace) == []


def test_a_valid_secret_name_is_accepted(cluster, namespace) -> None:
    spec = {
        "webhookAuth": {"signingSecretRef": {"name": "ingress-signing.v2"}},
        "notifications": {"signingSecretRef": {"name": "notify-signing"}},
    }
    cluster.apply(_policy(namespace, spec))
    (stored,) = _policies(cluster, namespace)
    assert stored["spec"]["webhookAuth"]["signingSecretRef"]["name"] == "ingress-signing.v2"


@pytest.mark.parametrize("location", ["../../team-alpha/claim", "claim/sub", "Claim"])
def test_a_pvc_location_must_be_a_claim_name(
    cluster, namespace, make_session, location: str
) -> None:
    body = make_session("pvc-name")
    body["spec"]["artifacts"] = {"storage": {"type": "pvc", "location": location}}
    stderr = _refused(cluster, namespace, body)
    assert "PersistentVolumeClaim name" in stderr, stderr
    listed = cluster.custom.list_namespaced_custom_object(GROUP, VERSION, namespace, "sessions")
    assert listed["items"] == []
    body["spec"]["artifacts"]["storage"]["location"] = "artifacts-claim"
    cluster.apply(body, namespace)


# --- the attack of finding 2, against the real ingress ------------------------------------


@pytest.fixture(scope="module")
def ingress(cluster, tmp_path_factory) -> Iterator[tuple[str, Path]]:
    port = free_port()
    path = tmp_path_factory.mktemp("ingress") / "ingress.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "ambient.webhooks.ingress"],
        env={**cluster.env, "AMBIENT_INGRESS_HOST": "127.0.0.1", "AMBIENT_INGRESS_PORT": str(port)},
        stdout=path.open("wb"),
        stderr=subprocess.STDOUT,
        cwd=ROOT,
    )
    url = f"http://127.0.0.1:{port}"
    cluster.wait_for("ingress ready", lambda: httpx.get(f"{url}/readyz").status_code == 200, 60)
    yield url, path
    proc.terminate()
    proc.wait(timeout=20)


@pytest.fixture
def victim(cluster) -> Iterator[str]:
    name = f"t-{uuid.uuid4().hex[:10]}"
    cluster.core.create_namespace({"metadata": {"name": name}})
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


def _signed(url: str, key: str, secret: str, payload: dict[str, Any], event: str) -> httpx.Response:
    body = json.dumps(payload).encode()
    return httpx.post(
        f"{url}/webhooks/github/{key}",
        content=body,
        timeout=30,
        headers={
            "Content-Type": "application/json",
            "X-GitHub-Event": event,
            "X-GitHub-Delivery": str(uuid.uuid4()),
            "X-Hub-Signature-256": "sha256="
            + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest(),
        },
    )


def test_a_tenant_cannot_borrow_another_tenants_signing_secret(
    cluster, ingress, namespace, victim
) -> None:
    url, _ = ingress
    # The victim's signing secret, which the attacker has (e.g. from a sender they control).
    secret = "victim-signing-secret"
    cluster.core.create_namespaced_secret(
        victim,
        {
            "metadata": {"name": "ingress-signing"},
            "data": {"github": base64.b64encode(secret.encode()).decode()},
        },
    )
    key = f"github-{uuid.uuid4().hex}"
    attack = _policy(
        namespace,
        {
            "webhookAuth": {
                "apiKeys": {"github": hashlib.sha256(key.encode()).hexdigest()},
                "signingSecretRef": {"name": WALKS_OUT.format(victim=victim)},
            },
            "defaults": {"framework": {"type": "script", "config": {"command": ["true"]}}},
        },
    )
    stderr = _refused(cluster, namespace, attack)
    assert "spec.webhookAuth.signingSecretRef.name" in stderr
    # The ingress never learns the key: a delivery signed with the victim's secret is
    # refused, and no Session is made anywhere.
    pr = json.loads((ROOT / "tests/fixtures/github/pull_request.opened.json").read_text())
    answer = _signed(url, key, secret, pr, "pull_request")
    assert answer.status_code == 401, answer.text
    assert answer.json()["error_code"] == "UnknownKey"
    for ns in (namespace, victim):
        items = cluster.custom.list_namespaced_custom_object(GROUP, VERSION, ns, "sessions")
        assert items["items"] == []
