"""The ingress on the real API server: signed deliveries become Sessions in the key's
namespace, exactly once; refusals create nothing. The ingress runs as the real process
(python -m ambient.webhooks.ingress), as the Helm chart runs it."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from slack_sdk.signature import SignatureVerifier

ROOT = Path(__file__).resolve().parents[2]
PR_OPENED = json.loads((ROOT / "tests/fixtures/github/pull_request.opened.json").read_text())
SECRET = "integration-signing-secret"

pytestmark = pytest.mark.integration


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def ingress(cluster, tmp_path_factory) -> Iterator[str]:
    port = free_port()
    log = (tmp_path_factory.mktemp("ingress") / "ingress.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "ambient.webhooks.ingress"],
        env={
            **cluster.env,
            "AMBIENT_INGRESS_HOST": "127.0.0.1",
            "AMBIENT_INGRESS_PORT": str(port),
            "AMBIENT_INGRESS_MAX_BODY_BYTES": "100000",
        },
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=ROOT,
    )
    url = f"http://127.0.0.1:{port}"
    cluster.wait_for("ingress ready", lambda: httpx.get(f"{url}/readyz").status_code == 200, 60)
    yield url
    proc.terminate()
    proc.wait(timeout=20)


def tenant(cluster, namespace: str, sources=("github", "slack")) -> dict[str, str]:
    """A NamespacePolicy with a key per source and a signing-secret Secret; returns keys."""
    keys = {s: f"{s}-{uuid.uuid4().hex}" for s in sources}
    cluster.core.create_namespaced_secret(
        namespace,
        {
            "metadata": {"name": "ingress-signing"},
            "data": {s: base64.b64encode(SECRET.encode()).decode() for s in sources},
        },
    )
    cluster.apply(
        {
            "apiVersion": "ambient.ai/v1alpha1",
            "kind": "NamespacePolicy",
            "metadata": {"name": "policy", "namespace": namespace},
            "spec": {
                "webhookAuth": {
                    "apiKeys": {s: hashlib.sha256(k.encode()).hexdigest() for s, k in keys.items()},
                    "signingSecretRef": {"name": "ingress-signing"},
                },
                "defaults": {"framework": {"type": "script", "config": {"command": ["true"]}}},
            },
        }
    )
    return keys


def github(
    url: str,
    key: str,
    payload: dict[str, Any],
    delivery: str,
    *,
    event="pull_request",
    signature: str | None = None,
    body: bytes | None = None,
) -> httpx.Response:
    data = json.dumps(payload).encode() if body is None else body
    sig = signature or "sha256=" + hmac.new(SECRET.encode(), data, hashlib.sha256).hexdigest()
    return httpx.post(
        f"{url}/webhooks/github/{key}",
        content=data,
        timeout=30,
        headers={
            "Content-Type": "application/json",
            "X-GitHub-Event": event,
            "X-GitHub-Delivery": delivery,
            "X-Hub-Signature-256": sig,
        },
    )


def body_name(source: str, payload: dict[str, Any]) -> str:
    """The Session a GitHub or Jira body maps to: <source>-<sha256(body)[:40]> (issue 17,
    finding 5), whatever delivery id it comes with."""
    return f"{source}-{hashlib.sha256(json.dumps(payload).encode()).hexdigest()[:40]}"


def wait_indexed(cluster, url: str, key: str) -> None:
    """A signed ping answers 200 once the watch has indexed the key (no Session made)."""
    cluster.wait_for(
        "the key to be indexed",
        lambda: github(url, key, {"zen": "hi"}, "ping", event="ping").status_code == 200,
        30,
    )


def sessions(cluster, namespace: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = cluster.custom.list_namespaced_custom_object(
        "ambient.ai", "v1alpha1", namespace, "sessions"
    )["items"]
    return items


@pytest.fixture
def other_namespace(cluster) -> Iterator[str]:
    name = f"t-{uuid.uuid4().hex[:10]}"
    cluster.core.create_namespace({"metadata": {"name": name}})
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


def test_signed_delivery_creates_the_session_in_the_keys_namespace_only(
    cluster, ingress, namespace, other_namespace
) -> None:
    keys = tenant(cluster, namespace)
    tenant(cluster, other_namespace)
    wait_indexed(cluster, ingress, keys["github"])
    payload = {
        **PR_OPENED,
        "namespace": other_namespace,
        "metadata": {"namespace": other_namespace},
    }
    delivery = str(uuid.uuid4())
    resp = github(ingress, keys["github"], payload, delivery)
    assert resp.status_code == 202, resp.text
    assert resp.json() == {"namespace": namespace, "session": body_name("github", payload)}
    stored = cluster.session(namespace, body_name("github", payload))
    trigger = stored["spec"]["trigger"]
    assert (trigger["source"], trigger["event"], trigger["deliveryId"]) == (
        "github",
        "pull_request.opened",
        delivery,
    )
    assert trigger["payload"]["pull_request"]["number"] == PR_OPENED["pull_request"]["number"]
    assert stored["spec"]["framework"]["type"] == "script"
    # the payload is one atomic value: its keys are not each tracked in managedFields
    (owned,) = [m for m in stored["metadata"]["managedFields"] if m["manager"] == "ambient-ingress"]
    assert owned["fieldsV1"]["f:spec"]["f:trigger"]["f:payload"] == {}
    assert sessions(cluster, other_namespace) == []
    again = github(ingress, keys["github"], payload, delivery)
    assert (again.status_code, again.json()) == (200, resp.json())
    assert len(sessions(cluster, namespace)) == 1


def test_refused_deliveries_get_their_status_and_create_nothing(
    cluster, ingress, namespace
) -> None:
    keys = tenant(cluster, namespace)
    wait_indexed(cluster, ingress, keys["github"])
    key = keys["github"]
    cases = {
        "bad signature": github(
            ingress, key, PR_OPENED, str(uuid.uuid4()), signature="sha256=" + "0" * 64
        ),
        "unknown key": github(ingress, "not-a-key", PR_OPENED, str(uuid.uuid4())),
        "oversized": github(ingress, key, {**PR_OPENED, "pad": "x" * 200_000}, str(uuid.uuid4())),
        "malformed": github(ingress, key, {}, str(uuid.uuid4()), body=b"{nope"),
    }
    body = json.dumps(
        {
            "type": "event_callback",
            "event_id": "Ev123ABC",
            "event": {"type": "app_mention", "text": "hi"},
        }
    ).encode()
    stale_ts = str(int(time.time()) - 600)
    cases["stale slack timestamp"] = httpx.post(
        f"{ingress}/webhooks/slack/{keys['slack']}",
        content=body,
        headers={
            "Content-Type": "application/json",
            "X-Slack-Request-Timestamp": stale_ts,
            "X-Slack-Signature": SignatureVerifier(SECRET).generate_signature(
                timestamp=stale_ts, body=body
            ),
        },
    )
    expected = {
        "bad signature": 401,
        "unknown key": 401,
        "oversized": 413,
        "malformed": 422,
        "stale slack timestamp": 401,
    }
    got = {name: r.status_code for name, r in cases.items()}
    assert got == expected
    for r in cases.values():
        assert set(r.json()) == {"error_code", "message", "details", "trace_id", "timestamp"}
    assert sessions(cluster, namespace) == []


def test_twenty_concurrent_copies_of_one_delivery_make_one_session(
    cluster, ingress, namespace
) -> None:
    keys = tenant(cluster, namespace)
    wait_indexed(cluster, ingress, keys["github"])
    delivery = str(uuid.uuid4())
    with ThreadPoolExecutor(20) as pool:
        results = list(
            pool.map(lambda _: github(ingress, keys["github"], PR_OPENED, delivery), range(20))
        )
    codes = sorted(r.status_code for r in results)
    assert codes == [200] * 19 + [202], [r.text for r in results if r.status_code >= 300]
    name = body_name("github", PR_OPENED)
    assert {r.json()["session"] for r in results} == {name}
    assert [s["metadata"]["name"] for s in sessions(cluster, namespace)] == [name]


def test_key_cli_create_then_revoke_takes_effect_through_the_watch(
    cluster, ingress, namespace
) -> None:
    tenant(cluster, namespace, sources=("github",))
    cmd = [sys.executable, "-m", "ambient.webhooks.cli.keys"]
    out = subprocess.run(
        [
            *cmd,
            "create",
            "--namespace",
            namespace,
            "--source",
            "github",
            "--base-url",
            "https://hooks.example",
        ],
        env=cluster.env,
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    ).stdout
    key = next(line.split()[-1] for line in out.splitlines() if line.strip().startswith("key:"))
    assert f"https://hooks.example/webhooks/github/{key}" in out
    policy = cluster.custom.get_namespaced_custom_object(
        "ambient.ai", "v1alpha1", namespace, "namespacepolicies", "policy"
    )
    assert (
        policy["spec"]["webhookAuth"]["apiKeys"]["github"]
        == hashlib.sha256(key.encode()).hexdigest()
    )
    assert key not in json.dumps(policy)
    wait_indexed(cluster, ingress, key)
    subprocess.run(
        [*cmd, "revoke", "--namespace", namespace, "--source", "github"],
        env=cluster.env,
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    cluster.wait_for(
        "the revoked key to stop working",
        lambda: github(ingress, key, {"zen": "hi"}, "ping", event="ping").status_code == 401,
        30,
    )


def test_the_delivery_s_trace_id_follows_its_session_into_the_operator_s_log(
    cluster, ingress, operator, namespace
) -> None:
    keys = tenant(cluster, namespace)
    wait_indexed(cluster, ingress, keys["github"])
    delivery = str(uuid.uuid4())
    resp = github(ingress, keys["github"], PR_OPENED, delivery)
    assert resp.status_code == 202, resp.text
    trace = resp.headers["X-Trace-Id"]
    name = resp.json()["session"]
    stored = cluster.session(namespace, name)
    assert stored["metadata"]["annotations"]["ambient.ai/trace-id"] == trace

    def milestone_logged() -> list[dict[str, Any]]:
        lines = [json.loads(line) for line in operator.logs().splitlines() if line.startswith("{")]
        mine = [line for line in lines if line.get("trace_id") == trace]
        # The milestone Events are logged as they are posted (crds/events.py says which).
        return mine if any("WorkloadSucceeded" in line["event"] for line in mine) else []

    lines = cluster.wait_for("the operator's milestone line for it", milestone_logged, timeout=60)
    assert all(line["session"] == f"{namespace}/{name}" for line in lines)
    assert all(line["component"] == "operator" for line in lines)
