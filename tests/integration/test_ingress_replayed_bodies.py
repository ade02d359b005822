"""Replayed GitHub and Jira bodies on the real API server, across two ingress replicas
(issue 17, finding 5): their signatures cover the body only, so a captured delivery sent
again under a new delivery id must start nothing new. The Session name is derived from the
body's digest, so the API server itself is the dedupe record both replicas share: the
replay is answered 200 with the first delivery's Session, exactly like a redelivery."""

from __future__ import annotations

import hashlib
import hmac
import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from .conftest import free_port
from .test_ingress_sessions import PR_OPENED, SECRET, body_name, github, sessions, tenant

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def replicas(cluster: Any, tmp_path_factory: Any) -> Iterator[list[str]]:
    """Two ingress processes on the same API server, as two replicas of the chart."""
    procs, urls = [], []
    for i in range(2):
        port = free_port()
        log = (tmp_path_factory.mktemp(f"ingress{i}") / "ingress.log").open("wb")
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "ambient.webhooks.ingress"],
                env={
                    **cluster.env,
                    "AMBIENT_INGRESS_HOST": "127.0.0.1",
                    "AMBIENT_INGRESS_PORT": str(port),
                },
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
            )
        )
        urls.append(f"http://127.0.0.1:{port}")
    for url in urls:
        cluster.wait_for(
            "ingress ready", lambda u=url: httpx.get(f"{u}/readyz").status_code == 200, 60
        )
    yield urls
    for proc in procs:
        proc.terminate()
        proc.wait(timeout=20)


def _indexed(cluster: Any, url: str, key: str) -> None:
    cluster.wait_for(
        "the key to be indexed",
        lambda: github(url, key, {"zen": "hi"}, "ping", event="ping").status_code == 200,
        30,
    )


def _jira(url: str, key: str, body: bytes, delivery: str) -> httpx.Response:
    return httpx.post(
        f"{url}/webhooks/jira/{key}",
        content=body,
        timeout=30,
        headers={
            "Content-Type": "application/json",
            "X-Atlassian-Webhook-Identifier": delivery,
            "X-Hub-Signature": "sha256="
            + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest(),
        },
    )


def test_a_github_body_replayed_under_new_delivery_ids_on_any_replica_starts_nothing(
    cluster: Any, namespace: str, replicas: list[str]
) -> None:
    keys = tenant(cluster, namespace, sources=("github",))
    for url in replicas:
        _indexed(cluster, url, keys["github"])
    first_id = str(uuid.uuid4())
    first = github(replicas[0], keys["github"], PR_OPENED, first_id)
    assert first.status_code == 202, first.text
    name = body_name("github", PR_OPENED)
    assert first.json() == {"namespace": namespace, "session": name}

    # The attacker's replays: the captured, validly signed body under fresh delivery ids,
    # spread over both replicas, at once.
    with ThreadPoolExecutor(10) as pool:
        replays = list(
            pool.map(
                lambda i: github(replicas[i % 2], keys["github"], PR_OPENED, str(uuid.uuid4())),
                range(10),
            )
        )
    assert [r.status_code for r in replays] == [200] * 10, [r.text for r in replays]
    assert {r.json()["session"] for r in replays} == {name}
    # The sender's own redelivery (same id, same body) is the plain duplicate it always was.
    again = github(replicas[1], keys["github"], PR_OPENED, first_id)
    assert (again.status_code, again.json()) == (200, first.json())
    (stored,) = sessions(cluster, namespace)
    assert stored["metadata"]["name"] == name
    assert stored["spec"]["trigger"]["deliveryId"] == first_id  # the first delivery's record
    # A new event (another body) is a new Session, whatever replica takes it.
    other = {**PR_OPENED, "number": PR_OPENED["number"] + 1}
    assert github(replicas[1], keys["github"], other, str(uuid.uuid4())).status_code == 202
    assert len(sessions(cluster, namespace)) == 2


def test_a_jira_body_replayed_under_a_new_identifier_starts_nothing(
    cluster: Any, namespace: str, replicas: list[str]
) -> None:
    keys = tenant(cluster, namespace, sources=("github", "jira"))
    _indexed(cluster, replicas[0], keys["github"])
    _indexed(cluster, replicas[1], keys["github"])
    body = json.dumps(
        {"webhookEvent": "jira:issue_created", "timestamp": 1, "issue": {"key": "OPS-1"}}
    ).encode()
    first = _jira(replicas[0], keys["jira"], body, "jira-delivery-1")
    assert first.status_code == 202, first.text
    replayed = _jira(replicas[1], keys["jira"], body, "a-forged-identifier")
    assert (replayed.status_code, replayed.json()) == (200, first.json())
    assert [s["spec"]["trigger"]["deliveryId"] for s in sessions(cluster, namespace)] == [
        "jira-delivery-1"
    ]
