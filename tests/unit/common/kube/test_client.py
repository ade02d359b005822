"""The synchronous client against a small HTTP server that answers as the API server does
(the real one: the integration tests): answers become the taxonomy's errors, watches
stream events."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from ambient.common.kube import errors
from ambient.common.kube.client import ConflictError, GoneError, Kube, secret_path
from ambient.common.kube.config import Configuration
from ambient.crds import naming

EVENTS = [
    {"type": "ADDED", "object": {"metadata": {"name": "a"}}},
    {"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "7"}}},
    {"type": "DELETED", "object": {"metadata": {"name": "a"}}},
]


class FakeApiServer(BaseHTTPRequestHandler):
    seen: list[tuple[str, str, str]] = []  # noqa: RUF012 - per test, reset by the fixture

    def log_message(self, *args: object) -> None:
        pass

    def _answer(self, status: int, body: object) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        self.seen.append(("GET", self.path, self.headers.get("Authorization", "")))
        path = self.path.split("?")[0]
        if "watch=1" in self.path:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Connection", "close")
            self.end_headers()
            for event in EVENTS:
                self.wfile.write(json.dumps(event).encode() + b"\n")
                self.wfile.flush()
            self.close_connection = True
            return
        statuses = {"/missing": 404, "/conflict": 409, "/invalid": 422, "/broken": 500}
        status = statuses.get(path, 200)
        if status == 200:
            self._answer(200, {"items": [], "big": 2**70})
        else:
            self._answer(status, {"kind": "Status", "reason": "R", "message": f"m{status}"})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.seen.append(("POST", self.path, self.rfile.read(length).decode()))
        if self.path.startswith("/apis/authentication.k8s.io/v1/selfsubjectreviews"):
            self._answer(201, {"status": {"userInfo": {"username": "alice"}}})
        else:
            self._answer(403, {"kind": "Status", "reason": "Forbidden", "message": "no"})


@pytest.fixture
def kube() -> Iterator[Kube]:
    FakeApiServer.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeApiServer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    cfg = Configuration(host=f"http://127.0.0.1:{server.server_address[1]}", token="token")
    try:
        yield Kube(connections=2, cfg=cfg)
    finally:
        server.shutdown()
        server.server_close()


def test_answers_are_decoded_and_carry_the_credential(kube: Kube) -> None:
    assert kube.call("GET", "/ok")["big"] == 2**70
    assert FakeApiServer.seen[-1][2] == "Bearer token"


@pytest.mark.parametrize(
    ("path", "cls"),
    [
        ("/missing", errors.NotFoundError),
        ("/conflict", errors.ConflictError),
        ("/invalid", errors.InvalidError),
        ("/broken", errors.UnavailableError),
    ],
)
def test_a_status_becomes_the_taxonomys_error(
    kube: Kube, path: str, cls: type[errors.KubeError]
) -> None:
    with pytest.raises(cls) as raised:
        kube.call("GET", path)
    assert str(raised.value).startswith(f"GET {path}: HTTP {raised.value.status}: m")


def test_the_operators_names_are_the_taxonomys(kube: Kube) -> None:
    with pytest.raises(GoneError):
        kube.call("GET", "/missing")
    with pytest.raises(ConflictError):
        kube.call("GET", "/conflict")
    with pytest.raises(errors.RefusedError) as refused:
        kube.call("POST", "/elsewhere", {"a": 1})
    assert (refused.value.status, refused.value.message) == (403, "no")


def test_no_answer_is_unavailable() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once closed
    cfg = Configuration(host=f"http://127.0.0.1:{port}")
    with pytest.raises(errors.UnavailableError) as raised:
        Kube(connections=1, cfg=cfg).call("GET", "/ok")
    assert raised.value.status == 0


def test_a_watch_streams_each_event(kube: Kube) -> None:
    events = list(kube.watch("/things", "5", timeout_seconds=10))
    assert [kind for kind, _ in events] == ["ADDED", "BOOKMARK", "DELETED"]
    assert events[0][1] == {"metadata": {"name": "a"}}
    query = FakeApiServer.seen[-1][1].split("?")[1]
    assert "resourceVersion=5" in query and "allowWatchBookmarks=true" in query
    assert "timeoutSeconds=10" in query


def test_whoami_asks_the_api_server(kube: Kube) -> None:
    assert kube.whoami() == "alice"


# --- Secret paths: names from tenants' objects (issue 17, finding 2) ----------------------


def test_a_secret_path_quotes_a_valid_name() -> None:
    assert secret_path("team-a", "signing.v2") == "/api/v1/namespaces/team-a/secrets/signing.v2"


@pytest.mark.parametrize(
    ("namespace", "name"),
    [
        ("team-b", "../../team-alpha/secrets/x"),
        ("team-b", ".."),
        ("team-b", "x/y"),
        ("team-b", "x%2Fy"),
        ("team-b", ""),
        ("..", "x"),
        ("team-b/secrets", "x"),
    ],
)
def test_a_name_that_walks_the_path_is_refused(namespace: str, name: str) -> None:
    with pytest.raises(naming.InvalidNameError):
        secret_path(namespace, name)


def test_the_operator_reads_no_secret_for_an_invalid_name() -> None:
    api = Kube.__new__(Kube)  # no configuration needed: the stub below is the transport
    calls: list[str] = []

    def call(method: str, path: str, *args: object, **kwargs: object) -> dict[str, object]:
        calls.append(path)
        raise errors.NotFoundError(404, "missing", "NotFound")

    api.call = call  # type: ignore[method-assign]
    with pytest.raises(naming.InvalidNameError, match="Secret name"):
        api.read_secret_key("team-b", "../../team-alpha/secrets/x", "notifications")
    assert calls == []
    assert api.read_secret_key("team-b", "signing", "notifications") is None
    assert calls == ["/api/v1/namespaces/team-b/secrets/signing"]
