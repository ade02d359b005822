"""Fixtures for the ingress unit tests: real sample payloads and real signatures."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from pathlib import Path
from typing import Any

import pytest
from slack_sdk.signature import SignatureVerifier

from ambient.common.store.s3 import ContentConflictError

FIXTURES = Path(__file__).resolve().parents[3] / "fixtures" / "github"
SECRET = "It's a Secret to Everybody"


class Signer:
    """Signs bodies the way each sender does."""

    secret = SECRET

    def github(self, body: bytes, secret: str = SECRET) -> str:
        return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()

    jira = github

    def slack(self, body: bytes, ts: int | None = None, secret: str = SECRET) -> dict[str, str]:
        stamp = str(int(time.time()) if ts is None else ts)
        sig = SignatureVerifier(secret).generate_signature(timestamp=stamp, body=body)
        return {"X-Slack-Request-Timestamp": stamp, "X-Slack-Signature": sig}


@pytest.fixture
def signer() -> Signer:
    return Signer()


@pytest.fixture
def github_example() -> Any:
    """Loads tests/fixtures/github/<event>.<action>.json (from @octokit/webhooks-examples)."""

    def load(name: str) -> dict[str, Any]:
        data: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text())
        return data

    return load


class FakeCreator:
    """The session creator the pipeline talks to (sessions_api.AsyncSessionsApi in production):
    Sessions by (namespace, name), signing secrets by source, every call counted."""

    def __init__(self, secrets: dict[str, str] | None = None) -> None:
        self.sessions: dict[tuple[str, str], dict[str, Any]] = {}
        self.secrets = secrets if secrets is not None else {}
        self.creates = 0
        self.secret_reads = 0
        self.error: Exception | None = None

    async def create_session(self, manifest: dict[str, Any]) -> dict[str, Any] | None:
        self.creates += 1
        if self.error is not None:
            raise self.error
        key = (manifest["metadata"]["namespace"], manifest["metadata"]["name"])
        if key in self.sessions:
            return self.sessions[key]
        self.sessions[key] = manifest
        return None

    async def signing_secret(self, namespace: str, secret: str, source: str) -> str | None:
        self.secret_reads += 1
        return self.secrets.get(source)


class FakeStore:
    """Create-only objects by key, as common.store.s3.S3Store keeps them."""

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}
        self.error: Exception | None = None

    def put_once(self, key: str, body: bytes) -> bool:
        if self.error is not None:
            raise self.error
        if key in self.objects:
            if self.objects[key] != body:
                raise ContentConflictError(key)
            return False
        self.objects[key] = body
        return True

    def location(self, key: str) -> str:
        return f"s3://payloads/{key}"


@pytest.fixture
def creator() -> FakeCreator:
    return FakeCreator({"github": SECRET, "jira": SECRET, "slack": SECRET})


@pytest.fixture
def store() -> FakeStore:
    return FakeStore()
