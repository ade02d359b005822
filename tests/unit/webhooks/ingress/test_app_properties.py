"""Whatever arrives over HTTP, the real ingress app answers in its contract (issue 17,
deliverables 3 and 4): never a 5xx, every refusal in the documented error shape with the
trace id of its X-Trace-Id header, every 2xx one of the documented bodies. Requests are
built from the parts a sender controls: the path (source and key), the headers, and the
body, signed with the namespace's secret or not."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from typing import Any
from urllib.parse import quote

from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ambient.webhooks.ingress.app import create_app
from ambient.webhooks.ingress.keyindex import KeyIndex, key_hash
from ambient.webhooks.ingress.settings import IngressSettings

SECRET = "s3cret"
KEYS = {"github": "kg", "jira": "kj", "slack": "ks"}
SHAPE = {"error_code", "message", "details", "trace_id", "timestamp"}
EXAMPLES = int(os.environ.get("AMBIENT_FUZZ_EXAMPLES", "300"))


class _Backend:
    def __init__(self) -> None:
        self.sessions: dict[str, dict[str, Any]] = {}

    def create_session(self, manifest: dict[str, Any]) -> dict[str, Any] | None:
        name = manifest["metadata"]["name"]
        if name in self.sessions:
            return self.sessions[name]
        self.sessions[name] = manifest
        return None

    def signing_secret(self, namespace: str, secret: str, source: str) -> str | None:
        return SECRET


def _client() -> TestClient:
    index = KeyIndex()
    spec = {
        "webhookAuth": {
            "apiKeys": {s: key_hash(k) for s, k in KEYS.items()},
            "signingSecretRef": {"name": "signing"},
        },
        "defaults": {"framework": {"type": "script"}},
        "ingress": {"github": {"events": ["*"]}, "jira": {"events": ["*"]}},
    }
    index.replace_all([("team-a", spec)])
    app = create_app(
        index, _Backend(), settings=IngressSettings(max_body_bytes=4096, rate_burst=10**9)
    )
    return TestClient(app, raise_server_exceptions=False)


CLIENT = _client()

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
payloads = st.fixed_dictionaries(
    {},
    optional={
        "action": st.sampled_from(["opened", "created", ""]) | st.text(max_size=10),
        "webhookEvent": st.sampled_from(["jira:issue_created", "comment_created"]) | json_values,
        "type": st.sampled_from(["event_callback", "url_verification"]) | json_values,
        "event": st.fixed_dictionaries({"type": st.text(max_size=10)}) | json_values,
        "event_id": st.text(max_size=140) | json_values,
        "challenge": json_values,
        "sender": st.fixed_dictionaries({"type": st.sampled_from(["User", "Bot"])}),
        "comment": st.fixed_dictionaries({"body": st.text(max_size=30)}) | json_values,
        "x": json_values,
    },
)
bodies = st.one_of(
    payloads.map(lambda p: json.dumps(p).encode()),
    st.binary(max_size=300),
    st.just(b'{"a": NaN}'),
    st.binary(min_size=4097, max_size=5000),
)
header_text = st.text(max_size=80) | st.binary(max_size=60).map(lambda b: b.decode("latin-1"))


@st.composite
def requests(draw: st.DrawFn) -> tuple[str, dict[str, bytes], bytes]:
    source = draw(st.sampled_from([*KEYS, "unknown", "GitHub", ""]))
    key = draw(st.sampled_from([*KEYS.values(), "nope"]) | st.text(min_size=1, max_size=10))
    body = draw(bodies)
    headers = {
        "content-type": draw(
            st.sampled_from(
                ["application/json", "application/x-www-form-urlencoded", "text/plain", ""]
            )
        ),
        "x-github-event": draw(st.sampled_from(["pull_request", "ping", "issues"]) | header_text),
        "x-github-delivery": draw(st.uuids().map(str) | header_text),
        "x-atlassian-webhook-identifier": draw(header_text),
    }
    signature = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    headers["x-hub-signature-256" if source == "github" else "x-hub-signature"] = draw(
        st.sampled_from([signature, "sha256=" + "0" * 64]) | header_text
    )
    if draw(st.booleans()):
        headers["content-length"] = draw(st.sampled_from([str(len(body)), "-1", "x", "99999999"]))
    in_path = draw(st.booleans())
    path = f"/webhooks/{source}/{quote(key, safe='')}" if in_path else f"/webhooks/{source}"
    if not in_path:
        headers["authorization"] = f"Bearer {key}"
    # As a server sees them: bytes (Latin-1 is what ASGI servers decode them with).
    raw = {k: v.encode("latin-1") for k, v in headers.items() if all(ord(c) < 256 for c in v)}
    return path, raw, body


@settings(max_examples=EXAMPLES, suppress_health_check=list(HealthCheck))
@given(requests())
def test_any_request_gets_an_answer_in_the_contract(
    request: tuple[str, dict[str, str], bytes],
) -> None:
    path, headers, body = request
    resp = CLIENT.post(path, content=body, headers=headers)
    assert resp.status_code < 500, resp.text  # zero 5xx: the backend here never fails
    answer = resp.json()
    if resp.status_code >= 400:
        assert set(answer) == SHAPE, answer
        assert answer["trace_id"] == resp.headers["x-trace-id"]
        assert "Traceback" not in resp.text
    elif resp.status_code == 202:
        assert set(answer) == {"namespace", "session"} and answer["namespace"] == "team-a"
    else:
        assert resp.status_code == 200
        assert answer.keys() in (
            {"namespace", "session"},
            {"status"},
            {"status", "reason"},
            {"challenge"},
        ), answer
