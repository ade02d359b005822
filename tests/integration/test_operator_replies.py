"""Replies to the source on the real API server with the real operator process: a local
HTTPS stand-in records what GitHub, Jira and Slack would receive (only the remote APIs
are stood in for). A reply lands exactly once through a SIGKILL of the operator between
the post and its record; 5xx and 429 are retried, Retry-After honoured; a reply that
fails, is refused by the egress rule or has no credentials leaves the Session Completed."""

from __future__ import annotations

import base64
import json
import re
import ssl
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from kubernetes.client.exceptions import ApiException

from ambient.crds import credentials as keys

from .conftest import tls_files

pytestmark = pytest.mark.integration

APP_ID = "4242"
INSTALLATION = "77"
INSTALLATION_TOKEN = "ghs_installation_token_for_tests"
GITHUB_TOKEN = "ghp_plain_token_for_tests"
SLACK_TOKEN = "xoxb-test-token"
JIRA_AUTH = "Basic " + base64.b64encode(b"bot@example.test:jira-token").decode()
THREAD = "1700000000.000100"


class StandIn(ThreadingHTTPServer):
    """GitHub's, Jira's and Slack's APIs as far as replies use them, over TLS.

    ``fail[(method, route)]`` holds canned answers served first; ``hold`` names routes
    whose first POST is stored (it landed) and then not answered until ``release`` is set,
    so the test can kill the operator between the post and its record."""

    daemon_threads = True

    def __init__(self, cert: Path, key: Path, app_key: rsa.RSAPublicKey) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        self.socket = context.wrap_socket(self.socket, server_side=True)
        self.app_key = app_key
        self.lock = threading.Lock()
        self.requests: list[dict[str, Any]] = []
        self.stored: dict[str, list[dict[str, Any]]] = {}
        self.fail: dict[tuple[str, str], list[tuple[int, dict[str, str]]]] = {}
        self.hold: set[str] = set()
        self.landed = threading.Event()
        self.release = threading.Event()

    @property
    def base(self) -> str:
        return f"https://localhost:{self.server_address[1]}"

    def posted(self, route: str) -> list[dict[str, Any]]:
        with self.lock:
            return [r for r in self.requests if r["method"] == "POST" and r["route"] == route]


ROUTES = [
    ("token", re.compile(r"^/github/app/installations/(?P<id>[^/]+)/access_tokens$")),
    ("github", re.compile(r"^/github/repos/(?P<repo>[^/]+/[^/]+)/issues/(?P<n>\d+)/comments$")),
    (
        "checks",
        re.compile(r"^/github/repos/(?P<repo>[^/]+/[^/]+)/commits/(?P<sha>\w+)/check-runs$"),
    ),
    ("check-new", re.compile(r"^/github/repos/(?P<repo>[^/]+/[^/]+)/check-runs$")),
    ("check", re.compile(r"^/github/repos/(?P<repo>[^/]+/[^/]+)/check-runs/(?P<id>\d+)$")),
    ("jira", re.compile(r"^/jira/rest/api/2/issue/(?P<key>[^/]+)/comment$")),
    ("slack-post", re.compile(r"^/slack/chat\.postMessage$")),
    ("slack-replies", re.compile(r"^/slack/conversations\.replies$")),
]


class _Handler(BaseHTTPRequestHandler):
    server: StandIn

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PATCH(self) -> None:
        self._handle("PATCH")

    def _handle(self, method: str) -> None:
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length", "0"))
        body = json.loads(self.rfile.read(length)) if length else None
        route, match = next(
            ((name, m) for name, rx in ROUTES if (m := rx.match(url.path))), ("?", None)
        )
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        record = {
            "method": method,
            "route": route,
            "path": url.path,
            "query": query,
            "auth": self.headers.get("Authorization", ""),
            "body": body,
            "at": time.monotonic(),
        }
        with self.server.lock:
            self.server.requests.append(record)
            canned = self.server.fail.get((method, route))
            answer = canned.pop(0) if canned else None
        if match is None:
            return self._send(404, {"message": "Not Found"})
        if answer is not None:
            return self._send(answer[0], {"message": "stand-in failure"}, answer[1])
        if route == "token":
            return self._token(match.group("id"))
        if not self._authorised(route):
            return self._send(401, {"message": "Bad credentials"})
        if route in ("checks", "check-new", "check"):
            return self._check_runs(route, method, match, body)
        if route == "github":
            return self._thread(method, f"github:{match['repo']}#{match['n']}", body, "github")
        if route == "jira":
            return self._thread(method, f"jira:{match['key']}", body, "jira")
        if route == "slack-replies":
            key = f"slack:{query.get('channel')}/{query.get('ts')}"
            with self.server.lock:
                messages = list(self.server.stored.get(key, []))
            return self._send(200, {"ok": True, "messages": messages})
        assert isinstance(body, dict)
        key = f"slack:{body.get('channel')}/{body.get('thread_ts')}"
        return self._thread("POST", key, body, "slack-post")

    def _check_runs(self, route: str, method: str, match: re.Match[str], body: Any) -> None:
        """Check runs of one repository, kept as GitHub keeps them (by id, per head_sha)."""
        with self.server.lock:
            runs = self.server.stored.setdefault(f"checks:{match['repo']}", [])
            if route == "checks":
                found = [r for r in runs if r["head_sha"] == match["sha"]]
                name = parse_qs(urlsplit(self.path).query).get("check_name", [None])[0]
                found = [r for r in found if name is None or r["name"] == name]
                return self._send(200, {"total_count": len(found), "check_runs": found})
            if route == "check-new":
                run = {**body, "id": len(runs) + 1, "html_url": f"{self.server.base}/run"}
                runs.append(run)
                return self._send(201, run)
            run = next(r for r in runs if r["id"] == int(match["id"]))
            run.update(body)
            return self._send(200, run)

    def _authorised(self, route: str) -> bool:
        auth = self.headers.get("Authorization", "")
        if route in ("checks", "check-new", "check"):
            return auth == f"Bearer {INSTALLATION_TOKEN}"
        if route == "github":
            return auth in (f"Bearer {INSTALLATION_TOKEN}", f"Bearer {GITHUB_TOKEN}")
        if route == "jira":
            return auth == JIRA_AUTH
        return auth == f"Bearer {SLACK_TOKEN}"

    def _token(self, installation: str) -> None:
        """The App's JWT must verify with the App's public key (a real RS256 signature)."""
        token = self.headers.get("Authorization", "").removeprefix("Bearer ")
        try:
            header, claims, signature = token.split(".")
            pad = lambda s: base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))  # noqa: E731
            self.server.app_key.verify(
                pad(signature), f"{header}.{claims}".encode(), padding.PKCS1v15(), hashes.SHA256()
            )
            payload = json.loads(pad(claims))
            valid = payload["iss"] == APP_ID and payload["exp"] > time.time()
        except Exception:
            valid = False
        if not valid or installation != INSTALLATION:
            return self._send(401, {"message": "A JSON web token could not be decoded"})
        expires = (datetime.now(UTC) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
        return self._send(201, {"token": INSTALLATION_TOKEN, "expires_at": expires})

    def _thread(self, method: str, key: str, body: Any, route: str) -> None:
        if method == "GET":
            with self.server.lock:
                items = list(self.server.stored.get(key, []))
            return self._send(200, {"comments": items} if route == "jira" else items)
        with self.server.lock:
            items = self.server.stored.setdefault(key, [])
            n = len(items) + 1
            item = {**body, "id": str(n), "html_url": f"{self.server.base}/{key}#c{n}"}
            if route == "slack-post":
                item = {**body, "ts": f"1700000100.{n:06d}"}
            items.append(item)
            hold = route in self.server.hold and not self.server.landed.is_set()
        if hold:  # stored: it landed; the answer waits until the test killed the operator
            self.server.landed.set()
            self.server.release.wait(120)
        if route == "slack-post":
            return self._send(200, {"ok": True, "ts": item["ts"]})
        return self._send(201, item)

    def _send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        try:
            self.send_response(status)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except OSError:  # the operator was killed while we held the answer
            pass

    def log_message(self, *_: Any) -> None:
        pass


@pytest.fixture
def app_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def stand_in(tmp_path: Path, app_key: rsa.RSAPrivateKey) -> Iterator[tuple[StandIn, Path]]:
    ca, cert, key = tls_files(tmp_path)
    server = StandIn(cert, key, app_key.public_key())
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server, ca
    server.release.set()
    server.shutdown()


@pytest.fixture
def replying_operator(operator: Any, stand_in: tuple[StandIn, Path]) -> Iterator[Any]:
    server, ca = stand_in
    env = {
        "AMBIENT_GITHUB_API_URL": f"{server.base}/github",
        "AMBIENT_SLACK_API_URL": f"{server.base}/slack",
        "AMBIENT_NOTIFY_CA_FILE": str(ca),
        # The stand-in is on loopback, which the egress rule refuses unless allowed by name.
        "AMBIENT_NOTIFY_EGRESS_ALLOW": "localhost",
        "AMBIENT_REPLY_MAX_ATTEMPTS": "3",
        # Short: only a honoured Retry-After makes a retry wait seconds.
        "AMBIENT_REPLY_BACKOFF_SECONDS": "0.1",
    }
    operator.stop()
    operator.start(env)
    operator.env = env
    try:
        yield operator
    finally:
        operator.stop()
        operator.start()


def _credentials(cluster: Any, namespace: str, data: dict[str, str]) -> None:
    cluster.core.create_namespaced_secret(
        namespace,
        {"metadata": {"name": keys.SOURCE_CREDENTIALS_SECRET}, "stringData": data},
    )


def _session(
    name: str, source: str, reply_to: dict[str, Any], duration: str = "20s"
) -> dict[str, Any]:
    # 20 s: long enough to be seen Running, which the operator writes up to its
    # settle_seconds (10 s) after the pod starts; a shorter run goes straight to its end.
    return {
        "apiVersion": "ambient.ai/v1alpha1",
        "kind": "Session",
        "metadata": {"name": name, "annotations": {"sim.ambient.ai/duration": duration}},
        "spec": {
            "trigger": {"source": source, "event": "test", "payload": {}, "replyTo": reply_to},
            "framework": {"type": "script", "config": {"command": ["true"]}},
        },
    }


def _append_result(cluster: Any, namespace: str, name: str, summary: str) -> None:
    """What the runner's Runner.result writes: history entry runner:result."""
    for _ in range(20):
        body = cluster.session(namespace, name)
        history = body["status"].get("history") or []
        history.append(
            {
                "seq": history[-1]["seq"] + 1 if history else 0,
                "id": "runner:result",
                "timestamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "event": "RunnerSucceeded",
                "data": {"summary": summary, "branch": "ambient/fix-7"},
            }
        )
        body["status"]["history"] = history
        try:
            cluster.custom.replace_namespaced_custom_object_status(
                "ambient.ai", "v1alpha1", namespace, "sessions", name, body
            )
            return
        except ApiException as exc:
            if exc.status != 409:
                raise
    raise AssertionError("could not write the runner's result")


def _history(cluster: Any, namespace: str, name: str) -> list[dict[str, Any]]:
    return list(cluster.session(namespace, name)["status"].get("history") or [])


def _final(cluster: Any, namespace: str, name: str, entry_id: str) -> dict[str, Any]:
    def found() -> dict[str, Any] | None:
        return next((e for e in _history(cluster, namespace, name) if e["id"] == entry_id), None)

    entry: dict[str, Any] = cluster.wait_for(f"{entry_id} in {name}'s history", found, 120)
    return entry


def test_github_reply_lands_once_through_a_sigkill_between_post_and_record(
    cluster: Any,
    namespace: str,
    app_key: rsa.RSAPrivateKey,
    stand_in: tuple[StandIn, Path],
    replying_operator: Any,
) -> None:
    server, _ = stand_in
    pem = app_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    _credentials(
        cluster,
        namespace,
        {
            keys.GITHUB_APP_ID_KEY: APP_ID,
            keys.GITHUB_APP_PRIVATE_KEY_KEY: pem,
            keys.GITHUB_APP_INSTALLATION_KEY: INSTALLATION,
        },
    )
    server.hold.add("github")
    target = {"repository": "octo/app", "number": 7}
    cluster.apply(_session("pr-7", "github", target), namespace)
    cluster.wait_phase(namespace, "pr-7", "Running")
    _append_result(cluster, namespace, "pr-7", "Fixed the flaky test in test_io.py.")
    cluster.wait_phase(namespace, "pr-7", "Completed")

    assert server.landed.wait(120), "the reply was never posted"
    # The comment is at GitHub; its ReplySent is not in history yet. Kill now.
    history = _history(cluster, namespace, "pr-7")
    ids = [e["id"] for e in history]
    assert "reply/github/ended/attempt-1" in ids
    assert "reply/github/ended" not in ids
    replying_operator.kill()
    server.release.set()
    replying_operator.start(replying_operator.env)

    sent = _final(cluster, namespace, "pr-7", "reply/github/ended")
    assert sent["event"] == "ReplySent"
    assert sent["data"]["deduplicated"] == "true"  # found by its marker, not posted again
    assert sent["data"]["attempts"] == "2"
    comments = server.stored["github:octo/app#7"]
    assert len(comments) == 1, comments
    uid = cluster.session(namespace, "pr-7")["metadata"]["uid"]
    body = comments[0]["body"]
    assert body.startswith(f"**Done**: Session `{namespace}/pr-7` completed.")
    assert "Fixed the flaky test in test_io.py." in body
    assert "- Branch: `ambient/fix-7`" in body
    assert body.endswith(f"<!-- ambient:{uid}:ended -->")
    # Every call to the repository used the installation token the App's JWT bought.
    calls = [r for r in server.requests if r["route"] == "github"]
    assert {r["auth"] for r in calls} == {f"Bearer {INSTALLATION_TOKEN}"}
    assert [r["method"] for r in calls] == ["POST", "GET"]  # the second attempt looked first
    # Nothing posts it again: a later event (the watch after a restart) finds it recorded.
    replying_operator.stop()
    replying_operator.start(replying_operator.env)
    time.sleep(3)
    assert len(server.stored["github:octo/app#7"]) == 1
    assert cluster.session(namespace, "pr-7")["status"]["phase"] == "Completed"


def test_jira_and_slack_replies_retry_5xx_and_429_honouring_retry_after(
    cluster: Any, namespace: str, stand_in: tuple[StandIn, Path], replying_operator: Any
) -> None:
    server, _ = stand_in
    _credentials(
        cluster,
        namespace,
        {
            keys.JIRA_BASE_URL_KEY: f"{server.base}/jira",
            keys.JIRA_EMAIL_KEY: "bot@example.test",
            keys.JIRA_API_TOKEN_KEY: "jira-token",
            keys.SLACK_BOT_TOKEN_KEY: SLACK_TOKEN,
        },
    )
    cluster.apply(
        {
            "apiVersion": "ambient.ai/v1alpha1",
            "kind": "NamespacePolicy",
            "metadata": {"name": "policy"},
            "spec": {"replies": {"onStart": True}},
        },
        namespace,
    )
    server.fail[("POST", "jira")] = [(503, {})]
    server.fail[("POST", "slack-post")] = [(429, {"Retry-After": "2"})]
    cluster.apply(_session("ops-42", "jira", {"issueKey": "OPS-42"}, "20s"), namespace)
    cluster.apply(
        _session("ask", "slack", {"channel": "C0LAN2Q65", "threadTs": THREAD}, "20s"), namespace
    )
    cluster.wait_phase(namespace, "ask", "Running")
    _append_result(cluster, namespace, "ask", "The deploy failed on a missing secret.")

    for name, kind in (("ops-42", "jira"), ("ask", "slack")):
        started = _final(cluster, namespace, name, f"reply/{kind}/started")
        assert (started["event"], started["data"]["attempts"]) == ("ReplySent", "2")
        ended = _final(cluster, namespace, name, f"reply/{kind}/ended")
        assert (ended["event"], ended["data"]["attempts"]) == ("ReplySent", "1")
        ids = [e["id"] for e in _history(cluster, namespace, name)]
        order = [
            f"reply/{kind}/started/attempt-1",
            f"reply/{kind}/started/attempt-2",
            f"reply/{kind}/started",
            f"reply/{kind}/ended/attempt-1",
            f"reply/{kind}/ended",
        ]
        assert [i for i in ids if i.startswith("reply/")] == order
        retried = next(e for e in _history(cluster, namespace, name) if e["id"] == order[1])
        assert (
            "HTTP 503" in retried["data"]["previous"] or "HTTP 429" in retried["data"]["previous"]
        )

    uid = {n: cluster.session(namespace, n)["metadata"]["uid"] for n in ("ops-42", "ask")}
    jira = server.stored["jira:OPS-42"]
    assert len(jira) == 2
    assert jira[0]["body"].startswith(f"*Started*: Session {{{{{namespace}/ops-42}}}}")
    assert jira[1]["properties"] == [
        {"key": "ambient-reply", "value": {"reply": f"ambient:{uid['ops-42']}:ended"}}
    ]
    slack = server.stored[f"slack:C0LAN2Q65/{THREAD}"]
    assert [m["metadata"]["event_payload"]["reply"] for m in slack] == [
        f"ambient:{uid['ask']}:started",
        f"ambient:{uid['ask']}:ended",
    ]
    assert "The deploy failed on a missing secret." in slack[1]["text"]
    assert all(m["thread_ts"] == THREAD for m in slack)
    posts = server.posted("slack-post")
    assert len(posts) == 3  # 429, then the started reply, then the ended one
    assert posts[1]["at"] - posts[0]["at"] >= 1.9  # Retry-After: 2 honoured (backoff is 0.1)
    assert {r["auth"] for r in server.requests if r["route"] == "jira"} == {JIRA_AUTH}


def test_failing_refused_and_unconfigured_replies_leave_the_session_completed(
    cluster: Any, namespace: str, stand_in: tuple[StandIn, Path], replying_operator: Any
) -> None:
    server, _ = stand_in
    port = server.server_address[1]
    _credentials(
        cluster,
        namespace,
        {
            keys.GITHUB_TOKEN_KEY: GITHUB_TOKEN,
            # An address literal on loopback: the egress rule allows "localhost" by name
            # only, so the tenant's Jira URL cannot reach the cluster's own addresses.
            keys.JIRA_BASE_URL_KEY: f"https://127.0.0.1:{port}/jira",
            keys.JIRA_EMAIL_KEY: "bot@example.test",
            keys.JIRA_API_TOKEN_KEY: "jira-token",
        },
    )
    server.fail[("POST", "github")] = [(500, {})] * 10
    cluster.apply(
        _session("broken", "github", {"repository": "octo/app", "number": 9}, "1s"), namespace
    )
    cluster.apply(_session("inside", "jira", {"issueKey": "OPS-1"}, "1s"), namespace)
    cluster.apply(
        _session("quiet", "slack", {"channel": "C1", "threadTs": THREAD}, "1s"), namespace
    )

    failed = _final(cluster, namespace, "broken", "reply/github/ended")
    assert (failed["event"], failed["data"]["attempts"]) == ("ReplyFailed", "3")
    assert failed["data"]["error"] == "comment: HTTP 500"
    assert len(server.posted("github")) == 3
    refused = _final(cluster, namespace, "inside", "reply/jira/ended")
    assert refused["event"] == "ReplyFailed"
    assert refused["data"]["error"] == "egress refused: loopback address"
    assert not [r for r in server.requests if r["route"] == "jira"]
    skipped = _final(cluster, namespace, "quiet", "reply/slack/ended")
    assert (skipped["event"], skipped["data"]["reason"]) == ("ReplySkipped", "no slack-bot-token")
    for name in ("broken", "inside", "quiet"):
        status = cluster.session(namespace, name)["status"]
        assert status["phase"] == "Completed", name
        assert status["reason"] == "Succeeded", name
        conditions = {c["type"]: c["status"] for c in status["conditions"]}
        assert conditions.get("Succeeded", "True") == "True", (name, conditions)


def test_check_run_started_in_progress_is_completed_by_the_ended_reply(
    cluster: Any,
    namespace: str,
    app_key: rsa.RSAPrivateKey,
    stand_in: tuple[StandIn, Path],
    replying_operator: Any,
) -> None:
    server, _ = stand_in
    pem = app_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    _credentials(
        cluster,
        namespace,
        {
            keys.GITHUB_APP_ID_KEY: APP_ID,
            keys.GITHUB_APP_PRIVATE_KEY_KEY: pem,
            keys.GITHUB_APP_INSTALLATION_KEY: INSTALLATION,
        },
    )
    cluster.apply(
        {
            "apiVersion": "ambient.ai/v1alpha1",
            "kind": "NamespacePolicy",
            "metadata": {"name": "policy"},
            "spec": {"replies": {"onStart": True, "githubCheckRun": True}},
        },
        namespace,
    )
    sha = "ec26c3e57ca3a959ca5aad62de7213c562f8c821"
    target = {"repository": "octo/app", "number": 2, "headSha": sha}
    cluster.apply(_session("pr-2", "github", target, "20s"), namespace)
    for kind in ("github", "github-check"):
        for outcome in ("started", "ended"):
            entry = _final(cluster, namespace, "pr-2", f"reply/{kind}/{outcome}")
            assert entry["event"] == "ReplySent", entry
    uid = cluster.session(namespace, "pr-2")["metadata"]["uid"]
    runs = server.stored["checks:octo/app"]
    assert len(runs) == 1, runs  # the started run was completed, not a second one posted
    run = runs[0]
    assert (run["name"], run["head_sha"], run["external_id"]) == ("ambient", sha, uid)
    assert (run["status"], run["conclusion"]) == ("completed", "success")
    writes = [r for r in server.requests if r["route"] in ("check-new", "check")]
    assert [(r["method"], r["body"]["status"]) for r in writes] == [
        ("POST", "in_progress"),
        ("PATCH", "completed"),
    ]
    comments = server.stored["github:octo/app#2"]
    assert [c["body"].split(":", 1)[0] for c in comments] == ["**Started**", "**Done**"]
