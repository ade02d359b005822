"""Signature verification per source. Pure: bytes, headers and a secret in, a verdict out.

Every comparison is constant-time (hmac.compare_digest); Slack's own SignatureVerifier
also refuses timestamps more than five minutes from now.

A verifier raises SignatureError and nothing else, whatever the headers hold: a header
that is not the shape its sender writes (non-ASCII, not hex, the wrong length) is a bad
signature, answered 401, never an error of the ingress. hmac.compare_digest itself
raises TypeError for a str with non-ASCII characters, so only checked ASCII reaches it.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from slack_sdk.signature import Clock, SignatureVerifier
from standardwebhooks import Webhook, WebhookVerificationError
from standardwebhooks.webhooks import EmptyWebhookSecretError

_HEX_DIGEST = re.compile(r"[0-9a-f]{64}")
_SLACK_SIGNATURE = re.compile(r"v0=[0-9a-f]{64}")
_SLACK_TIMESTAMP = re.compile(r"[0-9]{1,15}")

F = TypeVar("F", bound=Callable[..., None])


class SignatureError(Exception):
    """The request's signature is missing, malformed, wrong or stale."""


def _malformed_is_bad(verify: F) -> F:
    """Whatever slips past the shape checks (a library's TypeError, ValueError or
    UnicodeError on odd input) is a bad signature too: fail closed, never a 500."""

    @functools.wraps(verify)
    def checked(*args: Any, **kwargs: Any) -> None:
        try:
            verify(*args, **kwargs)
        except SignatureError:
            raise
        except (TypeError, ValueError, UnicodeError, AttributeError) as exc:
            raise SignatureError(
                f"the signature could not be checked ({type(exc).__name__}): treated as wrong"
            ) from exc

    return checked  # type: ignore[return-value]


def _header(headers: Mapping[str, str], name: str) -> str | None:
    """A header as text; bytes (an ASGI server's raw value) read as Latin-1, as HTTP does."""
    value: object = headers.get(name)
    if isinstance(value, bytes):
        return value.decode("latin-1")
    if value is None or isinstance(value, str):
        return value
    raise SignatureError(f"{name} is not a header value")


def _hub_sha256(body: bytes, secret: str, header: str | None, name: str) -> None:
    if not header:
        raise SignatureError(f"missing {name} header")
    scheme, _, digest = header.partition("=")
    digest = digest.strip().lower()
    if scheme != "sha256" or not _HEX_DIGEST.fullmatch(digest):
        raise SignatureError(f"{name} must look like sha256=<64 hex digits>")
    expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected.encode("ascii"), digest.encode("ascii")):
        raise SignatureError(f"{name} does not match the body and the signing secret")


@_malformed_is_bad
def verify_github(body: bytes, headers: Mapping[str, str], secret: str) -> None:
    """GitHub: X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the body>."""
    name = "X-Hub-Signature-256"
    _hub_sha256(body, secret, _header(headers, name.lower()), name)


@_malformed_is_bad
def verify_jira(body: bytes, headers: Mapping[str, str], secret: str) -> None:
    """Jira (webhooks with a secret): X-Hub-Signature: sha256=<hex HMAC-SHA256>."""
    name = "X-Hub-Signature"
    _hub_sha256(body, secret, _header(headers, name.lower()), name)


@_malformed_is_bad
def verify_slack(
    body: bytes,
    headers: Mapping[str, str],
    secret: str,
    clock: Callable[[], float] | None = None,
) -> None:
    """Slack v0 signature over 'v0:<timestamp>:<body>', timestamp within five minutes."""
    timestamp = _header(headers, "x-slack-request-timestamp")
    signature = _header(headers, "x-slack-signature")
    if not timestamp or not signature:
        raise SignatureError("missing X-Slack-Request-Timestamp or X-Slack-Signature header")
    if not _SLACK_TIMESTAMP.fullmatch(timestamp):
        # int() alone would take '١٢٣' (Arabic-Indic digits) or ' 12': only ASCII digits.
        raise SignatureError("X-Slack-Request-Timestamp is not a number")
    if not _SLACK_SIGNATURE.fullmatch(signature):
        raise SignatureError("X-Slack-Signature must look like v0=<64 hex digits>")
    verifier = (
        SignatureVerifier(secret) if clock is None else SignatureVerifier(secret, _Clock(clock))
    )
    ts = int(timestamp)
    now = clock() if clock is not None else None
    if now is not None and abs(now - ts) > 60 * 5:
        raise SignatureError("X-Slack-Request-Timestamp is more than five minutes off")
    try:
        text = body.decode("utf-8")  # slack_sdk decodes it; Slack sends UTF-8 only
    except UnicodeDecodeError as exc:
        raise SignatureError("the body is not UTF-8, so Slack did not sign it") from exc
    if not verifier.is_valid(body=text, timestamp=timestamp, signature=signature):
        raise SignatureError(
            "X-Slack-Signature does not match, or the timestamp is more than five minutes off"
        )


class _Clock(Clock):
    """slack_sdk's Clock interface over an injected time function (tests)."""

    def __init__(self, now: Callable[[], float]) -> None:
        self._now = now

    def now(self) -> float:
        return self._now()


# Standard Webhooks (the standardwebhooks library): the signature covers
# '<webhook-id>.<webhook-timestamp>.<body>'; the library refuses a timestamp more than this
# far from now (its own constant, repeated here for a replay's time of receipt and the docs).
GENERIC_TOLERANCE = timedelta(minutes=5)
_GENERIC_HEADERS = ("webhook-id", "webhook-timestamp", "webhook-signature")


class _ReceivedAt(Webhook):
    """The library's check against a given time instead of now (a replay checks the
    timestamp against when the request was received, as for Slack)."""

    def __init__(self, secret: str, now: float) -> None:
        super().__init__(secret)
        self._now = datetime.fromtimestamp(now, tz=UTC)

    # Overrides Webhook.__verify_timestamp (name-mangled), with the library's tolerance.
    def _Webhook__verify_timestamp(self, timestamp_header: str) -> datetime:  # noqa: N802
        try:
            timestamp = datetime.fromtimestamp(float(timestamp_header), tz=UTC)
        except (ValueError, OverflowError, OSError) as exc:
            raise WebhookVerificationError("Invalid Signature Headers") from exc
        if timestamp < self._now - GENERIC_TOLERANCE:
            raise WebhookVerificationError("Message timestamp too old")
        if timestamp > self._now + GENERIC_TOLERANCE:
            raise WebhookVerificationError("Message timestamp too new")
        return timestamp


@_malformed_is_bad
def verify_generic(
    body: bytes,
    headers: Mapping[str, str],
    secret: str,
    clock: Callable[[], float] | None = None,
) -> None:
    """Standard Webhooks: webhook-signature holds v1,<base64 HMAC-SHA256> of
    '<webhook-id>.<webhook-timestamp>.<body>' under the whsec_<base64> secret, and the
    timestamp is within five minutes of now (or of ``clock()``)."""
    signed = {name: _header(headers, name) or "" for name in _GENERIC_HEADERS}
    missing = [name for name, value in signed.items() if not value]
    if missing:
        raise SignatureError(f"missing the {', '.join(missing)} header(s) of Standard Webhooks")
    if not all(value.isascii() for value in signed.values()):
        raise SignatureError("a Standard Webhooks header is not ASCII")
    try:
        webhook = Webhook(secret) if clock is None else _ReceivedAt(secret, clock())
    except (EmptyWebhookSecretError, RuntimeError, ValueError) as exc:  # binascii.Error too
        raise SignatureError(
            "the generic signing secret is not a Standard Webhooks secret (whsec_<base64>)"
        ) from exc
    try:
        webhook.verify(body, signed, json_parse=False)
    except WebhookVerificationError as exc:
        raise SignatureError(f"the Standard Webhooks signature does not hold: {exc}") from exc


VERIFIERS: dict[str, Callable[[bytes, Mapping[str, str], str], None]] = {
    "github": verify_github,
    "jira": verify_jira,
    "slack": verify_slack,
    "generic": verify_generic,
}
# Sources that sign nothing: the ingress key alone authenticates them (Alertmanager's
# webhook receiver has no signing; it sends the key as http_config.authorization).
KEY_ONLY = frozenset({"alertmanager"})
