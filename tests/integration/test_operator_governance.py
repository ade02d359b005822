"""The operator's governance loops on the real API server and a real S3 server: the audit
trail is exported and outlives its Session, and /metrics shows Sessions by phase."""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from ambient.common.audit.cli import run as audit_cli
from ambient.common.store.s3 import S3Store

from .conftest import free_port


@pytest.fixture
def governed_operator(
    operator: Any, s3_store: S3Store, s3_endpoint: str
) -> Iterator[tuple[Any, int]]:
    """The run's operator restarted with a store and a metrics port, restored afterwards."""
    port = free_port()
    operator.stop()
    operator.start(
        {
            "AMBIENT_STORE_BUCKET": s3_store.bucket,
            "AMBIENT_STORE_ENDPOINT_URL": s3_endpoint,
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test",
            "AMBIENT_AUDIT_FLUSH_SECONDS": "0.5",
            "AMBIENT_METRICS_PORT": str(port),
        }
    )
    try:
        yield operator, port
    finally:
        operator.stop()
        operator.start()


def _metrics(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as rsp:
        return str(rsp.read().decode())


def test_audit_trail_is_exported_and_survives_the_session(
    cluster: Any,
    namespace: str,
    make_session: Any,
    governed_operator: tuple[Any, int],
    s3_store: S3Store,
) -> None:
    _, port = governed_operator
    cluster.apply(make_session("audited"), namespace)
    uid = cluster.wait_phase(namespace, "audited", "Completed")["metadata"]["uid"]

    line = f'ambient_sessions{{namespace="{namespace}",phase="Completed",reason="Succeeded"}} 1.0'
    cluster.wait_for("the Completed Session in /metrics", lambda: line in _metrics(port))

    def trail() -> str | None:
        now = datetime.now(UTC) + timedelta(minutes=1)
        out = audit_cli(["session", namespace, "audited"], s3_store, "", now)
        return out if "WorkloadSucceeded" in out else None

    cluster.wait_for("the exported trail to reach WorkloadSucceeded", trail, timeout=30)
    cluster.kubectl("delete", "session", "audited", "-n", namespace)
    cluster.wait_for(
        "the Session to be gone",
        lambda: "audited" not in cluster.kubectl("get", "sessions", "-n", namespace).stdout,
    )
    after = audit_cli(
        ["session", namespace, uid], s3_store, "", datetime.now(UTC) + timedelta(minutes=1)
    )
    actions = [row.split()[3] for row in after.splitlines()[1:]]
    assert actions[0] == "SessionCreated" and "WorkloadSucceeded" in actions
