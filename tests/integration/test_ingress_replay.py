"""The delivery log and replay on the real API server and a real S3-compatible server
(moto's server mode): the ingress and the admission webhook run as the real processes,
the CLI as an admin runs it (python -m ambient.webhooks.cli.deliveries, with the admin's
kubeconfig)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from ambient.common.audit.cli import run as audit_cli
from ambient.common.store.s3 import S3Store
from ambient.crds.models import RetentionPolicy
from ambient.operator import janitor
from ambient.webhooks.ingress.delivery_records import StoredRequest

from .conftest import admission_webhook, free_port

ROOT = Path(__file__).resolve().parents[2]
PR_OPENED = json.loads((ROOT / "tests/fixtures/github/pull_request.opened.json").read_text())
SECRET = "the-signing-secret"
PREFIX = "it"

pytestmark = pytest.mark.integration


def _store_env(store: S3Store, endpoint: str) -> dict[str, str]:
    return {
        "AMBIENT_STORE_BUCKET": store.bucket,
        "AMBIENT_STORE_ENDPOINT_URL": endpoint,
        "AMBIENT_STORE_PREFIX": PREFIX,
    }


@pytest.fixture
def team(cluster: Any, namespace: str) -> str:
    """A NamespacePolicy whose signing Secret holds the WRONG secret; returns the key."""
    key = f"github-{uuid.uuid4().hex}"
    cluster.core.create_namespaced_secret(
        namespace,
        {
            "metadata": {"name": "ingress-signing"},
            "data": {"github": base64.b64encode(b"a-wrong-secret").decode()},
        },
    )
    cluster.apply(
        {
            "apiVersion": "ambient.ai/v1alpha1",
            "kind": "NamespacePolicy",
            "metadata": {"name": "policy", "namespace": namespace},
            "spec": {
                "webhookAuth": {
                    "apiKeys": {"github": hashlib.sha256(key.encode()).hexdigest()},
                    "signingSecretRef": {"name": "ingress-signing"},
                },
                "defaults": {"framework": {"type": "script", "config": {"command": ["true"]}}},
            },
        }
    )
    return key


@dataclass(frozen=True)
class Ingress:
    url: str
    key: str
    env: dict[str, str]
    """The store settings, for the CLI."""


@pytest.fixture
def ingress(
    cluster: Any, team: str, s3_store: S3Store, s3_endpoint: str, tmp_path: Path
) -> Iterator[Ingress]:
    """The ingress with the store configured, started after the policy exists (so /readyz
    means the key is indexed)."""
    port = free_port()
    log = (tmp_path / "ingress.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "ambient.webhooks.ingress"],
        env={
            **cluster.env,
            **_store_env(s3_store, s3_endpoint),
            "AMBIENT_INGRESS_HOST": "127.0.0.1",
            "AMBIENT_INGRESS_PORT": str(port),
            "AMBIENT_INGRESS_AUDIT_FLUSH_SECONDS": "0.2",
            "AMBIENT_INGRESS_SECRET_TTL_SECONDS": "0.1",
        },
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=ROOT,
    )
    url = f"http://127.0.0.1:{port}"
    cluster.wait_for("ingress ready", lambda: httpx.get(f"{url}/readyz").status_code == 200, 60)
    yield Ingress(url, team, _store_env(s3_store, s3_endpoint))
    proc.terminate()
    proc.wait(timeout=20)


def _github(url: str, key: str, payload: dict[str, Any], delivery: str) -> httpx.Response:
    body = json.dumps(payload).encode()
    return httpx.post(
        f"{url}/webhooks/github/{key}",
        content=body,
        timeout=30,
        headers={
            "Content-Type": "application/json",
            "X-GitHub-Event": "pull_request",
            "X-GitHub-Delivery": delivery,
            "X-Hub-Signature-256": "sha256="
            + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest(),
        },
    )


def _body_name(payload: dict[str, Any]) -> str:
    return f"github-{hashlib.sha256(json.dumps(payload).encode()).hexdigest()[:40]}"


def _cli(cluster: Any, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ambient.webhooks.cli.deliveries", *args],
        env={**cluster.env, **env},
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        check=False,
    )


def test_a_refused_delivery_is_listed_then_replayed_exactly_once(
    cluster: Any, namespace: str, ingress: Ingress, s3_store: S3Store
) -> None:
    env, team, url = ingress.env, ingress.key, ingress.url
    refused_id, ignored_id, accepted_id = (str(uuid.uuid4()) for _ in range(3))

    refused = _github(url, team, PR_OPENED, refused_id)
    assert refused.status_code == 401 and refused.json()["error_code"] == "InvalidSignature"
    assert not cluster.custom.list_namespaced_custom_object(
        "ambient.ai", "v1alpha1", namespace, "sessions"
    )["items"]

    # The admin fixes the cause: the Secret now holds the sender's signing secret.
    cluster.core.patch_namespaced_secret(
        "ingress-signing",
        namespace,
        {"data": {"github": base64.b64encode(SECRET.encode()).decode()}},
    )
    closed = {**PR_OPENED, "action": "closed"}
    cluster.wait_for(
        "the fixed secret to be used",
        lambda: _github(url, team, closed, ignored_id).status_code == 200,
        30,
    )
    # Another body: GitHub Sessions are named by the body (issue 17, finding 5).
    accepted_body = {**PR_OPENED, "number": PR_OPENED["number"] + 1}
    assert _github(url, team, accepted_body, accepted_id).status_code == 202

    def listed() -> dict[str, str] | None:
        out = _cli(cluster, env, "list", "-n", namespace)
        assert out.returncode == 0, out.stderr
        rows: dict[str, str] = {}
        for line in out.stdout.splitlines()[1:]:
            # The wait above may have been refused once more before the fix was seen.
            rows[line.split()[4]] = rows.get(line.split()[4], "") + line + "\n"
        return rows if {refused_id, ignored_id, accepted_id} <= set(rows) else None

    rows = cluster.wait_for("the deliveries to be listed", listed, 30)
    assert " refused " in rows[refused_id] and "InvalidSignature" in rows[refused_id]
    assert " yes " in rows[refused_id]  # its request was kept
    assert " ignored " in rows[ignored_id] and "not selected" in rows[ignored_id]
    assert " created " in rows[accepted_id] and " yes " not in rows[accepted_id]
    filtered = _cli(cluster, env, "list", "-n", namespace, "--outcome", "refused")
    assert refused_id in filtered.stdout and accepted_id not in filtered.stdout

    first = _cli(cluster, env, "replay", "-n", namespace, refused_id)
    assert first.returncode == 0, first.stderr
    name = _body_name(PR_OPENED)
    assert f"created Session {namespace}/{name}" in first.stdout
    session = cluster.session(namespace, name)
    assert session["spec"]["trigger"]["deliveryId"] == refused_id
    replayed_by = session["metadata"]["annotations"]["ambient.ai/replayed-by"]
    assert replayed_by == "kubernetes-admin"  # whom the API server authenticated

    second = _cli(cluster, env, "replay", "-n", namespace, refused_id)
    assert second.returncode == 0, second.stderr
    assert "already exists for this delivery; nothing created" in second.stdout
    # The sender's own redelivery (now signed with the right secret) creates nothing either.
    again = _github(url, team, PR_OPENED, refused_id)
    assert again.status_code == 200 and again.json()["session"] == name
    names = sorted(
        s["metadata"]["name"]
        for s in cluster.custom.list_namespaced_custom_object(
            "ambient.ai", "v1alpha1", namespace, "sessions"
        )["items"]
    )
    assert names == sorted([name, _body_name(accepted_body)])
    _check_store_and_retention(cluster, env, s3_store, namespace, refused_id)


def _check_store_and_retention(
    cluster: Any, env: dict[str, str], s3_store: S3Store, namespace: str, refused_id: str
) -> None:
    name = _body_name(PR_OPENED)
    # The records are in the store per namespace and day; the audit CLI shows the trail.
    today = datetime.now(UTC)
    assert s3_store.list_keys(f"{PREFIX}/audit/{namespace}/{today:%Y/%m/%d}/")
    (kept,) = [
        k
        for k in s3_store.list_keys(f"{PREFIX}/deliveries/{namespace}/{today:%Y/%m/%d}/")
        if StoredRequest.decode(s3_store.get(k)).delivery_id == refused_id
    ]

    def trail() -> list[str] | None:
        table = audit_cli(
            ["session", namespace, name], s3_store, PREFIX, today + timedelta(minutes=5)
        )
        actions = [line.split()[3] for line in table.splitlines()[1:]]
        return actions if actions.count("WebhookDelivery") == 2 else None

    actions = cluster.wait_for("the redelivery's record to be exported", trail, 30)
    assert actions.count("DeliveryReplayed") == 2

    # Retention: the kept request goes after retention.deliveries, the records stay.
    class NoSessions:
        def list_sessions(self, namespace: str) -> list[dict[str, object]]:
            return []

        def delete_session(self, namespace: str, name: str, uid: str) -> bool:
            return False

    early = janitor.run(NoSessions(), s3_store, namespace, RetentionPolicy(), today, prefix=PREFIX)
    assert early.sweep.delivery_objects == []
    late = today + timedelta(days=32)
    done = janitor.run(NoSessions(), s3_store, namespace, RetentionPolicy(), late, prefix=PREFIX)
    assert kept in done.sweep.delivery_objects
    assert s3_store.list_keys(f"{PREFIX}/deliveries/{namespace}/") == []
    assert s3_store.list_keys(f"{PREFIX}/audit/{namespace}/")
    gone = _cli(cluster, env, "replay", "-n", namespace, refused_id)
    assert gone.returncode == 2 and "expired" in gone.stderr


def test_admission_decisions_are_exported(
    cluster: Any, s3_store: S3Store, s3_endpoint: str, tmp_path: Path
) -> None:
    env = {**_store_env(s3_store, s3_endpoint), "AMBIENT_ADMISSION_AUDIT_FLUSH_SECONDS": "0.2"}
    with admission_webhook(cluster, tmp_path, env) as hook:
        review = {
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "request": {
                "uid": str(uuid.uuid4()),
                "operation": "CREATE",
                "namespace": "governed-ns",
                "name": "s1",
                "resource": {"group": "ambient.ai", "version": "v1alpha1", "resource": "sessions"},
                "userInfo": {"username": "mallory"},
                "object": {"apiVersion": "ambient.ai/v1alpha1", "kind": "Session"},
            },
        }
        answer = httpx.post(f"{hook.url}/validate", json=review, verify=hook.tls).json()
        assert answer["response"]["allowed"] is False  # malformed Session: denied

        def exported() -> list[dict[str, Any]] | None:
            keys = s3_store.list_keys(f"{PREFIX}/audit/governed-ns/")
            lines = [json.loads(x) for k in keys for x in s3_store.get(k).splitlines()]
            return lines or None

        (record,) = cluster.wait_for("the decision to be exported", exported, 30)
        assert record["actor"] == "mallory" and record["outcome"] == "denied"
        assert record["resource"] == "sessions/s1"
        assert record["traceId"] == review["request"]["uid"]
