"""Signature verification per source. Pure: bytes, headers and a secret in, a verdict out.

Every comparison is constant-time (hmac.compare_digest); Slack's own SignatureVerifier
also refuses timestamps more than five minutes from now.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Mapping

from slack_sdk.signature import Clock, SignatureVerifier


class SignatureError(Exception):
    """The request's signature is missing, malformed, wrong or stale."""


def _hub_sha256(body: bytes, secret: str, header: str | None, name: str) -> None:
    if not header:
        raise SignatureError(f"missing {name} header")
    scheme, _, digest = header.partition("=")
    if scheme != "sha256" or not digest:
        raise SignatureError(f"{name} must look like sha256=<hex>")
    expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, digest.strip().lower()):
        raise SignatureError(f"{name} does not match the body and the signing secret")


def verify_github(body: bytes, headers: Mapping[str, str], secret: str) -> None:
    """GitHub: X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the body>."""
    _hub_sha256(body, secret, headers.get("x-hub-signature-256"), "X-Hub-Signature-256")


def verify_jira(body: bytes, headers: Mapping[str, str], secret: str) -> None:
    """Jira (webhooks with a secret): X-Hub-Signature: sha256=<hex HMAC-SHA256>."""
    _hub_sha256(body, secret, headers.get("x-hub-signature"), "X-Hub-Signature")


def verify_slack(
    body: bytes,
    headers: Mapping[str, str],
    secret: str,
    clock: Callable[[], float] | None = None,
) -> None:
    """Slack v0 signature over 'v0:<timestamp>:<body>', timestamp within five minutes."""
    timestamp = headers.get("x-slack-request-timestamp")
    signature = headers.get("x-slack-signature")
    if not timestamp or not signature:
        raise SignatureError("missing X-Slack-Request-Timestamp or X-Slack-Signature header")
    verifier = (
        SignatureVerifier(secret) if clock is None else SignatureVerifier(secret, _Clock(clock))
    )
    try:
        ts = int(timestamp)
    except ValueError as exc:
        raise SignatureError("X-Slack-Request-Timestamp is not a number") from exc
    now = clock() if clock is not None else None
    if now is not None and abs(now - ts) > 60 * 5:
        raise SignatureError("X-Slack-Request-Timestamp is more than five minutes off")
    if not verifier.is_valid(body=body, timestamp=timestamp, signature=signature):
        raise SignatureError(
            "X-Slack-Signature does not match, or the timestamp is more than five minutes off"
        )


class _Clock(Clock):
    """slack_sdk's Clock interface over an injected time function (tests)."""

    def __init__(self, now: Callable[[], float]) -> None:
        self._now = now

    def now(self) -> float:
        return self._now()


VERIFIERS: dict[str, Callable[[bytes, Mapping[str, str], str], None]] = {
    "github": verify_github,
    "jira": verify_jira,
    "slack": verify_slack,
}
