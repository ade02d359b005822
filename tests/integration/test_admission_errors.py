"""A fault of the admission webhook, in the real process on the real API server, fails
closed with a readable answer (issue 17, deliverable 3): the Session write is refused with
the trace id the webhook's log has, nothing is created, and the fault is counted and
audited. The webhook's review is replaced by one that raises, as a bug would."""

from __future__ import annotations

import json
import re
import ssl
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from ambient.webhooks.admission.registration import webhook_configuration

from .conftest import free_port, tls_files

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
LABEL = "ambient.ai/admission-errors-test"
FAULTY = """
import sys
import ambient.webhooks.admission.app as app
from ambient.webhooks.admission.__main__ import main

def review(request, state):
    raise RuntimeError("injected review fault /etc/injected-detail")

app.review = review
sys.exit(main())
"""


@pytest.fixture(scope="module")
def faulty_webhook(cluster: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    tmp = tmp_path_factory.mktemp("admission-errors")
    ca, cert, key = tls_files(tmp)
    port = free_port()
    run = uuid.uuid4().hex[:8]
    log = tmp / "webhook.log"
    proc = subprocess.Popen(
        [sys.executable, "-c", FAULTY],
        env={
            **cluster.env,
            "AMBIENT_ADMISSION_CERT_FILE": str(cert),
            "AMBIENT_ADMISSION_KEY_FILE": str(key),
            "AMBIENT_ADMISSION_HOST": "127.0.0.1",
            "AMBIENT_ADMISSION_PORT": str(port),
        },
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        cwd=ROOT,
    )
    context = ssl.create_default_context(cafile=str(ca))

    def get(path: str) -> tuple[int, str]:
        with urllib.request.urlopen(
            f"https://127.0.0.1:{port}{path}", context=context, timeout=5
        ) as rsp:
            return int(rsp.status), rsp.read().decode()

    def ready() -> bool:
        try:
            return get("/readyz")[0] == 200
        except OSError:
            return False

    cluster.wait_for("the webhook to be ready", ready, timeout=30)
    name = f"ambient-admission-errors-{run}"
    cluster.apply(
        webhook_configuration(
            ca.read_bytes(),
            url=f"https://127.0.0.1:{port}/validate",
            name=name,
            match_labels={LABEL: run},
        )
    )
    try:
        yield {"run": run, "log": log, "get": get}
    finally:
        cluster.kubectl("delete", "validatingwebhookconfiguration", name, "--ignore-not-found")
        proc.terminate()
        proc.wait(timeout=20)


def _refusal(cluster: Any, namespace: str, make_session: Any) -> str:
    """The API server's refusal of a Session create, once the registration is in use (a
    Session created before that is deleted and the create tried again)."""
    deadline = time.monotonic() + 30
    while True:
        try:
            cluster.custom.create_namespaced_custom_object(
                "ambient.ai", "v1alpha1", namespace, "sessions", make_session("s1")
            )
        except ApiException as exc:
            if "ambient.ai admission" in str(exc.body) or time.monotonic() > deadline:
                return str(exc.body)
        else:
            cluster.custom.delete_namespaced_custom_object(
                "ambient.ai", "v1alpha1", namespace, "sessions", "s1"
            )
        assert time.monotonic() < deadline, "the webhook was never called"
        time.sleep(0.5)


def test_a_fault_in_the_review_refuses_the_write_with_a_trace_id(
    cluster: Any, faulty_webhook: Any, make_session: Any
) -> None:
    namespace = f"adm-err-{uuid.uuid4().hex[:8]}"
    cluster.core.create_namespace(
        {"metadata": {"name": namespace, "labels": {LABEL: faulty_webhook["run"]}}}
    )
    try:
        message = _refusal(cluster, namespace, make_session)
        assert "ambient.ai admission: the webhook failed to evaluate this request" in message
        trace = re.search(r"trace id ([0-9a-f]{32})", message)
        assert trace is not None, message
        assert "injected" not in message and "Traceback" not in message
        items = cluster.custom.list_namespaced_custom_object(
            "ambient.ai", "v1alpha1", namespace, "sessions"
        )["items"]
        assert items == []
        # counted, and in the log under the trace id with its stack trace
        _, metrics = faulty_webhook["get"]("/metrics")
        assert re.search(
            r'ambient_admission_unexpected_errors_total\{where="review"\} [1-9]', metrics
        )
        text = faulty_webhook["log"].read_text(errors="replace")
        assert f"(trace {trace.group(1)}): RuntimeError" in text
        assert "Traceback" in text
        # audited, with outcome error and the same trace id
        audits = [
            json.loads(line)["audit"] for line in text.splitlines() if line.startswith('{"audit"')
        ]
        (record,) = [a for a in audits if a["traceId"] == trace.group(1)]
        assert (record["outcome"], record["action"]) == ("error", "admission CREATE sessions")
        assert record["namespace"] == namespace
    finally:
        cluster.kubectl("delete", "namespace", namespace, "--wait=false", check=False)
