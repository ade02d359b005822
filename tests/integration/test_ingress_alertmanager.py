"""A real Alertmanager (built from its Go module by hack/build-alertmanager.sh) fires at the
real ingress through its own webhook receiver, authenticated by ``http_config.authorization``
(``Authorization: Bearer <key>``): one Session per alert group and status however often
Alertmanager repeats the notification, the resolved notification its own Session, and a
payload that is not version 4 refused with 422, creating nothing."""

from __future__ import annotations

import hashlib
import json
import re
import shlex
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from ambient.webhooks.ingress.events import session_name

from .conftest import free_port
from .test_ingress_sessions import ingress, sessions  # noqa: F401 (ingress: a fixture)

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
FIRING = json.loads((ROOT / "tests/fixtures/alertmanager/firing.json").read_text())


@pytest.fixture(scope="session")
def alertmanager_bin(pytestconfig: pytest.Config) -> str:
    """The cached binary; the first run on a machine builds it (minutes), its progress
    shown live on the terminal (pytest's capture is suspended for the build)."""
    capture = pytestconfig.pluginmanager.getplugin("capturemanager")
    with capture.global_and_fixture_disabled():
        proc = subprocess.run(
            [str(ROOT / "hack/build-alertmanager.sh")],
            stdout=subprocess.PIPE,
            text=True,
            check=False,
            timeout=3000,
        )
    assert proc.returncode == 0, "hack/build-alertmanager.sh failed (its output is above)"
    (line,) = [x for x in proc.stdout.splitlines() if x.startswith("ALERTMANAGER=")]
    return shlex.split(line.partition("=")[2])[0]


def alertmanager_tenant(cluster, namespace: str) -> str:
    """A NamespacePolicy with an Alertmanager key and no signing Secret (Alertmanager
    signs nothing), selecting firing and resolved; returns the key."""
    key = f"am-{uuid.uuid4().hex}"
    cluster.apply(
        {
            "apiVersion": "ambient.ai/v1alpha1",
            "kind": "NamespacePolicy",
            "metadata": {"name": "policy", "namespace": namespace},
            "spec": {
                "webhookAuth": {
                    "apiKeys": {"alertmanager": hashlib.sha256(key.encode()).hexdigest()}
                },
                "ingress": {"alertmanager": {"events": ["firing", "resolved"]}},
                "defaults": {"framework": {"type": "script", "config": {"command": ["true"]}}},
            },
        }
    )
    return key


def post(url: str, key: str, payload: dict[str, Any]) -> httpx.Response:
    return httpx.post(
        f"{url}/webhooks/alertmanager",
        json=payload,
        headers={"Authorization": f"Bearer {key}"},
        timeout=30,
    )


@pytest.fixture
def alertmanager(alertmanager_bin, ingress, namespace, cluster, tmp_path) -> Iterator[str]:  # noqa: F811
    """Alertmanager on loopback (clustering off) whose webhook receiver is the ingress."""
    key = alertmanager_tenant(cluster, namespace)
    # Indexed: a refusal of the payload (422), not of the key (401), and nothing created.
    cluster.wait_for(
        "the key to be indexed",
        lambda: post(ingress, key, {**FIRING, "version": "3"}).status_code == 422,
        30,
    )
    config = {
        "route": {
            "receiver": "ambient",
            "group_by": ["alertname"],
            "group_wait": "1s",
            "group_interval": "1s",
            "repeat_interval": "2s",
        },
        "receivers": [
            {
                "name": "ambient",
                "webhook_configs": [
                    {
                        "url": f"{ingress}/webhooks/alertmanager",
                        "send_resolved": True,
                        "http_config": {"authorization": {"credentials": key}},
                    }
                ],
            }
        ],
    }
    (tmp_path / "alertmanager.yml").write_text(json.dumps(config))  # JSON is YAML
    port = free_port()
    log = tmp_path / "alertmanager.log"
    proc = subprocess.Popen(
        [
            alertmanager_bin,
            f"--config.file={tmp_path / 'alertmanager.yml'}",
            f"--storage.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",  # no gossip port: a single loopback instance
        ],
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        cluster.wait_for(
            "alertmanager ready",
            lambda: httpx.get(f"{url}/-/ready", timeout=2).status_code == 200,
            60,
        )
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        print(log.read_text()[-3000:])


def webhook_sends(url: str) -> int:
    """Notifications Alertmanager's webhook integration has sent; none may have failed."""
    text = httpx.get(f"{url}/metrics", timeout=5).text
    total = re.search(
        r'^alertmanager_notifications_total\{integration="webhook"\} (\S+)$', text, re.M
    )
    failed = re.findall(
        r'^alertmanager_notifications_failed_total\{integration="webhook"[^}]*\} (\S+)$', text, re.M
    )
    assert sum(float(f) for f in failed) == 0, "the ingress refused a notification"
    return int(float(total.group(1))) if total else 0


def duplicates(ingress_url: str) -> int:
    """Alertmanager deliveries the ingress answered as repeats (200, nothing created)."""
    text = httpx.get(f"{ingress_url}/metrics", timeout=5).text
    found = re.search(
        r'^ambient_ingress_deliveries_total\{outcome="duplicate",source="alertmanager"\} (\S+)$',
        text,
        re.M,
    )
    return int(float(found.group(1))) if found else 0


def fire(url: str, labels: dict[str, str], starts: datetime, ends: datetime) -> None:
    alert = {
        "labels": labels,
        "annotations": {"summary": "disk almost full"},
        "startsAt": starts.isoformat(),
        "endsAt": ends.isoformat(),
        "generatorURL": "http://prometheus.invalid/graph",
    }
    httpx.post(f"{url}/api/v2/alerts", json=[alert], timeout=5).raise_for_status()


def test_repeats_make_one_session_and_resolved_its_own(
    cluster,
    ingress,  # noqa: F811
    alertmanager,
    namespace,
) -> None:
    labels = {"alertname": f"DiskFull{uuid.uuid4().hex[:6]}", "severity": "critical"}
    starts = datetime.now(UTC) - timedelta(seconds=5)
    fire(alertmanager, labels, starts, datetime.now(UTC) + timedelta(minutes=10))
    # The first send, then at least two repeats (repeat_interval 2s).
    repeats_before = duplicates(ingress)
    cluster.wait_for("three webhook sends", lambda: webhook_sends(alertmanager) >= 3, 60)
    # The repeats reached the ingress (a send Alertmanager counted may still be in flight).
    cluster.wait_for(
        "two repeats answered as duplicates",
        lambda: duplicates(ingress) - repeats_before >= 2,
        60,
    )
    (one,) = sessions(cluster, namespace)
    trigger = one["spec"]["trigger"]
    assert (trigger["source"], trigger["event"]) == ("alertmanager", "firing")
    assert trigger["payload"]["version"] == "4"
    assert trigger["payload"]["commonLabels"] == labels
    assert one["metadata"]["name"] == session_name("alertmanager", trigger["deliveryId"])
    # Resolve it: Alertmanager sends the group's resolved notification once.
    fire(alertmanager, labels, starts, datetime.now(UTC) - timedelta(seconds=1))
    both = cluster.wait_for(
        "the resolved Session",
        lambda: s if len(s := sessions(cluster, namespace)) == 2 else None,
        60,
    )
    events = sorted(s["spec"]["trigger"]["event"] for s in both)
    assert events == ["firing", "resolved"]
    sends = webhook_sends(alertmanager)
    time.sleep(3)  # more sends of the resolved group would be repeats: still two Sessions
    assert len(sessions(cluster, namespace)) == 2, f"after {sends} sends"


def test_the_same_notification_again_is_200_with_the_same_body_and_not_v4_is_422(
    cluster,
    ingress,  # noqa: F811
    namespace,
) -> None:
    alertmanager_tenant(cluster, namespace)
    # An admin's new key, as the keys CLI makes it (the tenant's first key is replaced).
    out = subprocess.run(
        [
            *(sys.executable, "-m", "ambient.webhooks.cli.keys", "create", "-n", namespace),
            *("--source", "alertmanager", "--base-url", "https://hooks.example"),
        ],
        env=cluster.env,
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    ).stdout
    key = next(line.split()[-1] for line in out.splitlines() if line.strip().startswith("key:"))
    assert "https://hooks.example/webhooks/alertmanager with http_config.authorization" in out
    payload = {**FIRING, "groupKey": f'{{}}:{{alertname="{uuid.uuid4().hex}"}}'}
    cluster.wait_for(
        "the key to be indexed", lambda: post(ingress, key, payload).status_code == 202, 30
    )
    (created,) = sessions(cluster, namespace)
    name = created["metadata"]["name"]
    again = post(ingress, key, payload)
    assert (again.status_code, again.json()) == (200, {"namespace": namespace, "session": name})
    old = post(ingress, key, {**payload, "version": "3", "status": "resolved"})
    assert old.status_code == 422
    assert old.json()["error_code"] == "MalformedPayload"
    assert "version '3' is not supported" in old.json()["message"]
    in_path = httpx.post(f"{ingress}/webhooks/alertmanager/{key}", json=payload, timeout=30)
    assert in_path.status_code == 200  # the key in the path works the same
    assert [s["metadata"]["name"] for s in sessions(cluster, namespace)] == [name]


def test_the_api_server_refuses_a_misspelt_status(cluster, namespace) -> None:
    policy = {
        "apiVersion": "ambient.ai/v1alpha1",
        "kind": "NamespacePolicy",
        "metadata": {"name": "policy", "namespace": namespace},
        "spec": {"ingress": {"alertmanager": {"events": ["firng"]}}},
    }
    refused = cluster.kubectl("apply", "-f", "-", stdin=json.dumps(policy), check=False)
    assert refused.returncode != 0
    assert 'Unsupported value: "firng"' in refused.stderr
