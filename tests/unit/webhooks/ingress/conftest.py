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
