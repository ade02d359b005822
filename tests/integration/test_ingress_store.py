"""Large payloads through the real ingress process, the real API server and a real S3
server (moto's): a payload above the in-object limit goes to the store and the Session
references it; nothing is answered 2xx before both are stored."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from ambient.common.store.s3 import S3Store
from ambient.runners.sdk.contract import CONTEXT_SCHEMA, Context
from ambient.runners.sdk.runtime import Runner

from .conftest import free_port
from .test_ingress_sessions import PR_OPENED, github, sessions, tenant, wait_indexed

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
IN_OBJECT = 256 * 1024


def _start(
    cluster: Any, tmp: Path, store_env: dict[str, str]
) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    log = (tmp / f"ingress-{port}.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "ambient.webhooks.ingress"],
        env={
            **cluster.env,
            "AMBIENT_INGRESS_HOST": "127.0.0.1",
            "AMBIENT_INGRESS_PORT": str(port),
            "AMBIENT_INGRESS_MAX_BODY_BYTES": str(IN_OBJECT),
            "AMBIENT_INGRESS_REQUEST_TIMEOUT_SECONDS": "30",
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test",
            **store_env,
        },
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=ROOT,
    )
    url = f"http://127.0.0.1:{port}"
    cluster.wait_for("ingress ready", lambda: httpx.get(f"{url}/readyz").status_code == 200, 60)
    return proc, url


@pytest.fixture
def start_ingress(cluster: Any, tmp_path: Path) -> Iterator[Callable[[dict[str, str]], str]]:
    procs: list[subprocess.Popen[bytes]] = []

    def start(store_env: dict[str, str]) -> str:
        proc, url = _start(cluster, tmp_path, store_env)
        procs.append(proc)
        return url

    yield start
    for proc in procs:
        proc.terminate()
        proc.wait(timeout=20)


def _large(size: int) -> dict[str, Any]:
    return {**PR_OPENED, "pad": "x" * size}


def _objects(store: S3Store) -> list[str]:
    """The payloads stored. The ingress's audit trail shares the bucket (under
    ``<prefix>/audit/``) and is flushed every 5 s, whenever the delivery's records are due."""
    return [k for k in store.list_keys("") if "/payloads/" in k]


def test_a_large_signed_delivery_is_stored_and_referenced_exactly_once(
    cluster: Any,
    namespace: str,
    *,
    s3_store: S3Store,
    s3_endpoint: str,
    start_ingress: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url = start_ingress(
        {
            "AMBIENT_STORE_BUCKET": s3_store.bucket,
            "AMBIENT_STORE_PREFIX": "ingress",
            "AMBIENT_STORE_ENDPOINT_URL": s3_endpoint,
        }
    )
    keys = tenant(cluster, namespace)
    wait_indexed(cluster, url, keys["github"])
    payload = _large(3 * 1024 * 1024)
    raw = json.dumps(payload).encode()
    delivery = str(uuid.uuid4())

    resp = github(url, keys["github"], payload, delivery)
    assert resp.status_code == 202, resp.text
    name = f"github-{hashlib.sha256(raw).hexdigest()[:40]}"  # by body (issue 17, finding 5)
    assert resp.json() == {"namespace": namespace, "session": name}
    key = f"ingress/{namespace}/payloads/github/{hashlib.sha256(raw).hexdigest()}.json"
    assert _objects(s3_store) == [key]
    stored = s3_store.get(key)
    assert stored == raw
    trigger = cluster.session(namespace, name)["spec"]["trigger"]
    assert trigger["payload"] == {}
    assert trigger["payloadRef"] == {
        "location": f"s3://{s3_store.bucket}/{key}",
        "size": len(raw),
        "sha256": hashlib.sha256(raw).hexdigest(),
    }
    assert trigger["event"] == "pull_request.opened"  # the event mapping read the body
    # The runner library reads it back from the store, size and sha256 checked.
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3_endpoint)
    runner = Runner(Context({"schema": CONTEXT_SCHEMA, "trigger": trigger}), client=None)  # type: ignore[arg-type]
    assert runner.payload() == payload

    again = github(url, keys["github"], payload, delivery)
    assert (again.status_code, again.json()) == (200, resp.json())
    assert _objects(s3_store) == [key]
    assert len(sessions(cluster, namespace)) == 1

    # Above GitHub's 25 MB: 413 with the error shape, nothing stored, no Session.
    huge = github(url, keys["github"], _large(26 * 1024 * 1024), str(uuid.uuid4()))
    assert huge.status_code == 413, huge.text
    err = huge.json()
    assert err["error_code"] == "PayloadTooLarge"
    assert set(err) == {"error_code", "message", "details", "trace_id", "timestamp"}
    assert err["details"] == {"limit": 25 * 1024 * 1024}
    assert _objects(s3_store) == [key]
    assert len(sessions(cluster, namespace)) == 1


def test_store_unreachable_is_503_and_no_session(
    cluster: Any, namespace: str, start_ingress: Any
) -> None:
    url = start_ingress(
        {
            "AMBIENT_STORE_BUCKET": "nowhere",
            "AMBIENT_STORE_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}",  # nothing listens
        }
    )
    keys = tenant(cluster, namespace)
    wait_indexed(cluster, url, keys["github"])
    resp = github(url, keys["github"], _large(IN_OBJECT + 1), str(uuid.uuid4()))
    assert resp.status_code == 503, resp.text
    assert resp.json()["error_code"] == "StoreUnavailable"
    assert resp.headers["retry-after"] == "5"
    assert sessions(cluster, namespace) == []
    # Small payloads do not need the store: they still become Sessions.
    small = github(url, keys["github"], PR_OPENED, str(uuid.uuid4()))
    assert small.status_code == 202, small.text
