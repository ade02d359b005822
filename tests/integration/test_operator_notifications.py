"""Notifications on the real API server: signed, retried against a local HTTPS receiver
that fails twice first, and the delivery recorded in the Session's history."""

from __future__ import annotations

import json
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from ambient.operator.notify import rules as n

from .conftest import tls_files

SECRET = b"team-alpha-notify-secret"


class Receiver(ThreadingHTTPServer):
    """HTTPS endpoint that answers 503 to the first ``fail_first`` requests."""

    def __init__(self, cert: Path, key: Path, fail_first: int) -> None:
        self.fail_first = fail_first
        self.received: list[tuple[dict[str, str], bytes]] = []
        super().__init__(("127.0.0.1", 0), _Handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        self.socket = context.wrap_socket(self.socket, server_side=True)


class _Handler(BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.server.received.append((dict(self.headers), body))
        self.send_response(503 if len(self.server.received) <= self.server.fail_first else 200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *_: Any) -> None:  # keep test output clean
        pass


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[tuple[Receiver, Path]]:
    ca, cert, key = tls_files(tmp_path)
    server = Receiver(cert, key, fail_first=2)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server, ca
    server.shutdown()


@pytest.fixture
def notifying_operator(operator: Any, receiver: tuple[Receiver, Path]) -> Iterator[Any]:
    operator.stop()
    # The receiver is on loopback, which the egress rule refuses unless the admin allows it.
    operator.start(
        {"AMBIENT_NOTIFY_CA_FILE": str(receiver[1]), "AMBIENT_NOTIFY_EGRESS_ALLOW": "localhost"}
    )
    try:
        yield operator
    finally:
        operator.stop()
        operator.start()


def test_completed_session_is_notified_signed_after_two_failures(
    cluster: Any,
    namespace: str,
    make_session: Any,
    receiver: tuple[Receiver, Path],
    notifying_operator: Any,
) -> None:
    server, _ = receiver
    # By name: admission refuses a loopback address written literally.
    url = f"https://localhost:{server.server_address[1]}/hook"
    cluster.core.create_namespaced_secret(
        namespace,
        {"metadata": {"name": "notify"}, "stringData": {"notifications": SECRET.decode()}},
    )
    cluster.apply(
        {
            "apiVersion": "ambient.ai/v1alpha1",
            "kind": "NamespacePolicy",
            "metadata": {"name": "policy"},
            "spec": {
                "notifications": {
                    "webhooks": [{"url": url, "events": ["session.completed", "session.failed"]}],
                    "signingSecretRef": {"name": "notify"},
                }
            },
        },
        namespace,
    )
    cluster.apply(make_session("notified"), namespace)
    cluster.wait_phase(namespace, "notified", "Completed")

    def delivered() -> dict[str, Any] | None:
        history = cluster.session(namespace, "notified")["status"]["history"]
        found = [e for e in history if e["event"] == n.HISTORY_DELIVERED]
        return found[0] if found else None

    entry = cluster.wait_for("NotificationDelivered in history", delivered, timeout=60)
    assert entry["data"]["attempts"] == "3"
    assert entry["data"]["event"] == "session.completed"
    assert url not in json.dumps(entry)  # the history names the endpoint by a hash only
    assert len(server.received) == 3
    for headers, body in server.received:
        assert n.verify(SECRET, int(headers[n.TIMESTAMP_HEADER]), body, headers[n.SIGNATURE_HEADER])
    event = json.loads(server.received[-1][1])
    assert (event["event"], event["session"], event["phase"]) == (
        "session.completed",
        "notified",
        "Completed",
    )
    ids = {h[n.DELIVERY_HEADER] for h, _ in server.received}
    assert len(ids) == 1  # every retry carries the same delivery id
