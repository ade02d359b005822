"""Bad input against the real ingress process on the real API server: a signature header
that is not ASCII (issue 17, finding 13) is a bad signature, answered 401 in the error
shape, audited and counted like any refusal; before, hmac.compare_digest raised and the
answer was Starlette's plain-text 500 with no record of it."""

from __future__ import annotations

import hashlib
import hmac
import json
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from .conftest import free_port
from .test_ingress_sessions import SECRET, tenant

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
PR_OPENED = (ROOT / "tests/fixtures/github/pull_request.opened.json").read_bytes()
SHAPE = {"error_code", "message", "details", "trace_id", "timestamp"}


@pytest.fixture(scope="module")
def ingress(cluster, tmp_path_factory) -> Iterator[tuple[str, Path]]:
    port = free_port()
    log = tmp_path_factory.mktemp("ingress") / "ingress.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "ambient.webhooks.ingress"],
        env={**cluster.env, "AMBIENT_INGRESS_HOST": "127.0.0.1", "AMBIENT_INGRESS_PORT": str(port)},
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        cwd=ROOT,
    )
    url = f"http://127.0.0.1:{port}"
    cluster.wait_for("ingress ready", lambda: httpx.get(f"{url}/readyz").status_code == 200, 60)
    yield url, log
    proc.terminate()
    proc.wait(timeout=20)


def _post(url: str, source: str, key: str, headers: dict[str, Any]) -> httpx.Response:
    return httpx.post(
        f"{url}/webhooks/{source}/{key}",
        content=PR_OPENED,
        timeout=30,
        headers={"Content-Type": "application/json", **headers},
    )


def _sample(url: str, series: str) -> float:
    """One series' value, e.g. 'ambient_ingress_deliveries_total{outcome="refused",...}'."""
    for line in httpx.get(f"{url}/metrics").text.splitlines():
        if line.startswith(series + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_non_ascii_signature_headers_are_401_json_audited_and_counted(
    cluster, ingress, namespace
) -> None:
    url, log = ingress
    keys = tenant(cluster, namespace, sources=("github", "jira", "slack"))
    refused = 'ambient_ingress_deliveries_total{outcome="refused",source="github"}'
    for source, key in keys.items():  # the watch has indexed every key
        cluster.wait_for(
            f"the {source} key to be indexed",
            lambda s=source, k=key: _post(url, s, k, {}).json()["error_code"] != "UnknownKey",
            30,
        )
    before = _sample(url, refused)
    cases = [
        ("github", {"X-Hub-Signature-256": "sha256=ü".encode(), "X-GitHub-Event": "pull_request"}),
        (
            "github",
            {
                "X-Hub-Signature-256": b"sha256=" + "é".encode("latin-1") * 64,
                "X-GitHub-Event": "pull_request",
                "X-GitHub-Delivery": str(uuid.uuid4()),
            },
        ),
        ("jira", {"X-Hub-Signature": "sha256=\u00fc\u00fc".encode()}),
        (
            "slack",
            {
                "X-Slack-Request-Timestamp": str(int(time.time())).encode(),
                "X-Slack-Signature": "v0=ü".encode(),
            },
        ),
    ]
    traces = []
    for source, headers in cases:
        answer = _post(url, source, keys[source], headers)
        assert answer.status_code == 401, answer.text
        assert answer.headers["content-type"] == "application/json"
        body = answer.json()
        assert set(body) == SHAPE and body["error_code"] == "InvalidSignature"
        assert body["trace_id"] == answer.headers["x-trace-id"]
        assert "Traceback" not in answer.text
        traces.append(body["trace_id"])
    # counted as refusals, none as an unexpected error
    assert _sample(url, refused) == before + 2
    assert _sample(url, 'ambient_ingress_unexpected_errors_total{where="delivery"}') == 0
    assert _sample(url, 'ambient_ingress_unexpected_errors_total{where="http"}') == 0
    # audited: one WebhookEvent per delivery, with its trace id
    records = {}
    for line in log.read_text(errors="replace").splitlines():
        if line.startswith("{") and '"WebhookEvent"' in line:
            record = json.loads(line)
            records[record["trace_id"]] = record
    for trace in traces:
        assert records[trace]["outcome"] == "refused"
        assert records[trace]["reason"] == "InvalidSignature"
        assert records[trace]["namespace"] == namespace
    assert "Traceback" not in log.read_text(errors="replace")
    # nothing created
    items = cluster.custom.list_namespaced_custom_object(
        "ambient.ai", "v1alpha1", namespace, "sessions"
    )
    assert items["items"] == []


# --- a fault of the ingress itself, in the real process -----------------------------------

# The real entry point with two faults injected: a bug in the pipeline for every delivery
# that passes its signature, and one past the handler when a request asks for it.
FAULTY = """
import ambient.webhooks.ingress.handler as handler
import ambient.webhooks.ingress.rules as rules
from ambient.webhooks.ingress.__main__ import main

def decide_or_refuse(*args, **kwargs):
    raise RuntimeError("injected pipeline fault /etc/injected-detail")

handle = handler.IngressHandler.handle

async def handle_or_fail(self, source, key, headers, body):
    if headers.get("x-inject-fault"):
        raise RuntimeError("injected route fault /etc/injected-detail")
    return await handle(self, source, key, headers, body)

rules.decide_or_refuse = decide_or_refuse
handler.IngressHandler.handle = handle_or_fail
main()
"""


@pytest.fixture(scope="module")
def faulty_ingress(cluster, tmp_path_factory) -> Iterator[tuple[str, Path]]:
    port = free_port()
    log = tmp_path_factory.mktemp("faulty-ingress") / "ingress.log"
    proc = subprocess.Popen(
        [sys.executable, "-c", FAULTY],
        env={**cluster.env, "AMBIENT_INGRESS_HOST": "127.0.0.1", "AMBIENT_INGRESS_PORT": str(port)},
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        cwd=ROOT,
    )
    url = f"http://127.0.0.1:{port}"
    cluster.wait_for("ingress ready", lambda: httpx.get(f"{url}/readyz").status_code == 200, 60)
    yield url, log
    proc.terminate()
    proc.wait(timeout=20)


def _signed_headers(body: bytes) -> dict[str, str]:
    digest = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    return {
        "X-GitHub-Event": "pull_request",
        "X-GitHub-Delivery": str(uuid.uuid4()),
        "X-Hub-Signature-256": f"sha256={digest}",
    }


def test_a_fault_of_the_ingress_is_500_json_logged_counted_and_audited(
    cluster, faulty_ingress, namespace
) -> None:
    url, log = faulty_ingress
    keys = tenant(cluster, namespace, sources=("github", "jira", "slack"))
    cluster.wait_for(
        "the key to be indexed",
        lambda: _post(url, "github", keys["github"], {}).json()["error_code"] != "UnknownKey",
        30,
    )
    traces = {}
    for where, extra in (("delivery", {}), ("http", {"X-Inject-Fault": "1"})):
        answer = _post(url, "github", keys["github"], {**_signed_headers(PR_OPENED), **extra})
        assert answer.status_code == 500, answer.text
        assert answer.headers["content-type"] == "application/json"
        body = answer.json()
        assert set(body) == SHAPE and body["error_code"] == "InternalError"
        assert body["trace_id"] == answer.headers["x-trace-id"]
        assert "Traceback" not in answer.text and "injected" not in answer.text
        traces[where] = body["trace_id"]
        assert _sample(url, f'ambient_ingress_unexpected_errors_total{{where="{where}"}}') == 1
    errors = 'ambient_ingress_deliveries_total{outcome="error",source="github"}'
    assert _sample(url, errors) == 2
    text = log.read_text(errors="replace")
    audits = {
        r["trace_id"]: r
        for r in (json.loads(line) for line in text.splitlines() if '"WebhookEvent"' in line)
    }
    for trace in traces.values():
        assert (audits[trace]["outcome"], audits[trace]["status"]) == ("error", 500)
        assert f"{trace} failed: RuntimeError" in text  # logged under its trace id
    assert audits[traces["delivery"]]["namespace"] == namespace
    assert text.count("Traceback") == 2  # the stack traces are in the log, not the answers
    # the ingress goes on answering
    assert httpx.get(f"{url}/healthz").status_code == 200
    items = cluster.custom.list_namespaced_custom_object(
        "ambient.ai", "v1alpha1", namespace, "sessions"
    )
    assert items["items"] == []
