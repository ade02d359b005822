"""Notifications cannot reach internal addresses (issue 17, finding 3), on the real API
server with the real operator: an address literal is refused at admission, a host name
that resolves to loopback is refused by the operator's egress rule before any connection,
and a redirect is not followed. The history says why in a few words, never what an
internal service answered. (test_notifications.py shows the allow-list letting a loopback
receiver through.)"""

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


class Receiver(ThreadingHTTPServer):
    """HTTPS endpoint on loopback answering every request with ``status`` (and a
    ``Location`` for redirects); keeps the paths it was asked for."""

    def __init__(self, cert: Path, key: Path) -> None:
        self.status = 200
        self.location = ""
        self.paths: list[str] = []
        super().__init__(("127.0.0.1", 0), _Handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        self.socket = context.wrap_socket(self.socket, server_side=True)

    @property
    def port(self) -> int:
        return int(self.server_address[1])


class _Handler(BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.server.paths.append(self.path)
        body = b'{"internal": "secret-looking answer"}'
        self.send_response(self.server.status)
        if self.server.location:
            self.send_header("Location", self.server.location)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        self.do_POST()

    def log_message(self, *_: Any) -> None:
        pass


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[tuple[Receiver, Path]]:
    ca, cert, key = tls_files(tmp_path)
    server = Receiver(cert, key)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server, ca
    server.shutdown()


def _restart(operator: Any, env: dict[str, str]) -> None:
    operator.stop()
    operator.start(env)


@pytest.fixture
def strict_operator(operator: Any, receiver: tuple[Receiver, Path]) -> Iterator[Any]:
    """The operator as shipped: no allow-list (it trusts the receiver's CA, so only the
    egress rule can stop the delivery)."""
    _restart(operator, {"AMBIENT_NOTIFY_CA_FILE": str(receiver[1])})
    try:
        yield operator
    finally:
        _restart(operator, {})


@pytest.fixture
def allowing_operator(operator: Any, receiver: tuple[Receiver, Path]) -> Iterator[Any]:
    _restart(
        operator,
        {"AMBIENT_NOTIFY_CA_FILE": str(receiver[1]), "AMBIENT_NOTIFY_EGRESS_ALLOW": "localhost"},
    )
    try:
        yield operator
    finally:
        _restart(operator, {})


def _policy(url: str) -> dict[str, Any]:
    return {
        "apiVersion": "ambient.ai/v1alpha1",
        "kind": "NamespacePolicy",
        "metadata": {"name": "policy"},
        "spec": {"notifications": {"webhooks": [{"url": url, "events": ["session.completed"]}]}},
    }


def _notification_outcome(cluster: Any, namespace: str, name: str) -> dict[str, Any]:
    def recorded() -> dict[str, Any] | None:
        history = cluster.session(namespace, name).get("status", {}).get("history", [])
        found = [e for e in history if e["event"] in (n.HISTORY_DELIVERED, n.HISTORY_FAILED)]
        return found[0] if found else None

    entry: dict[str, Any] = cluster.wait_for("a notification outcome", recorded, timeout=60)
    return entry


@pytest.mark.parametrize(
    "url",
    [
        "https://169.254.169.254/latest/meta-data/",
        "https://127.0.0.1:8443/hook",
        "https://10.0.0.1/hook",
        "https://[::1]/hook",
        "https://[fd00::1]/hook",
        "https://[::ffff:169.254.169.254]/hook",
        "https://100.64.0.1/hook",
        "https://127.1/hook",
        "https://[64:ff9b::a9fe:a9fe]/",
        "https://[fe80::1%25eth0]/",
        "https://user:pw@hooks.example.com/",
    ],
)
def test_a_policy_naming_an_internal_address_is_refused_at_admission(
    cluster: Any, namespace: str, url: str
) -> None:
    proc = cluster.kubectl(
        "apply", "-n", namespace, "-f", "-", stdin=json.dumps(_policy(url)), check=False
    )
    assert proc.returncode != 0
    assert "url must be an https URL" in proc.stderr, proc.stderr
    assert not cluster.custom.list_namespaced_custom_object(
        "ambient.ai", "v1alpha1", namespace, "namespacepolicies"
    )["items"]


def test_a_policy_naming_a_host_or_a_public_address_is_admitted(
    cluster: Any, namespace: str
) -> None:
    for url in (
        "https://hooks.example.com/x",
        "https://hooks.slack.com/services/T000/B000/XXXX",
        "https://hooks.example.com:8443/a?b=1#c",
        "https://8.8.8.8/x",
        "https://[2606:4700::1]/",
    ):
        cluster.apply(_policy(url), namespace)


def test_a_name_resolving_to_loopback_is_refused_and_the_receiver_gets_nothing(
    cluster: Any,
    namespace: str,
    make_session: Any,
    receiver: tuple[Receiver, Path],
    strict_operator: Any,
) -> None:
    server, _ = receiver
    cluster.apply(_policy(f"https://localhost:{server.port}/hook"), namespace)
    cluster.apply(make_session("probe"), namespace)
    cluster.wait_phase(namespace, "probe", "Completed")

    entry = _notification_outcome(cluster, namespace, "probe")
    assert entry["event"] == n.HISTORY_FAILED
    assert entry["data"]["error"] == "egress refused: loopback address"
    assert entry["data"]["attempts"] == "1"  # a refusal is final, not retried
    assert "127.0.0.1" not in json.dumps(entry) and "localhost" not in json.dumps(entry)
    assert server.paths == []


def test_a_redirect_is_not_followed_and_the_answer_is_not_recorded(
    cluster: Any,
    namespace: str,
    make_session: Any,
    receiver: tuple[Receiver, Path],
    allowing_operator: Any,
) -> None:
    server, _ = receiver
    server.status, server.location = 302, f"http://localhost:{server.port}/elsewhere"
    cluster.apply(_policy(f"https://localhost:{server.port}/hook"), namespace)
    cluster.apply(make_session("redirected"), namespace)
    cluster.wait_phase(namespace, "redirected", "Completed")

    entry = _notification_outcome(cluster, namespace, "redirected")
    assert entry["event"] == n.HISTORY_FAILED
    assert (entry["data"]["status"], entry["data"]["error"]) == (
        "302",
        "redirect not followed (HTTP 302)",
    )
    assert "secret-looking" not in json.dumps(entry)
    assert server.paths == ["/hook"]  # /elsewhere never asked
