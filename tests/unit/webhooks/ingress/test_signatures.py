from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
from standardwebhooks import Webhook

from ambient.webhooks.ingress.signatures import (
    SignatureError,
    verify_generic,
    verify_github,
    verify_jira,
    verify_slack,
)

BODY = b'{"action":"opened"}'


def test_github_accepts_its_own_signature(signer) -> None:
    verify_github(BODY, {"x-hub-signature-256": signer.github(BODY)}, signer.secret)


@pytest.mark.parametrize(
    "header",
    [None, "", "sha1=abc", "sha256=", "sha256=" + "0" * 64],
)
def test_github_refuses_missing_malformed_or_wrong(signer, header) -> None:
    headers = {} if header is None else {"x-hub-signature-256": header}
    with pytest.raises(SignatureError):
        verify_github(BODY, headers, signer.secret)


def test_github_refuses_a_changed_body_or_another_secret(signer) -> None:
    sig = signer.github(BODY)
    with pytest.raises(SignatureError):
        verify_github(BODY + b" ", {"x-hub-signature-256": sig}, signer.secret)
    with pytest.raises(SignatureError):
        verify_github(BODY, {"x-hub-signature-256": sig}, "another secret")


def test_jira_uses_x_hub_signature(signer) -> None:
    verify_jira(BODY, {"x-hub-signature": signer.jira(BODY)}, signer.secret)
    with pytest.raises(SignatureError, match="X-Hub-Signature"):
        verify_jira(BODY, {"x-hub-signature-256": signer.jira(BODY)}, signer.secret)


def test_slack_accepts_a_fresh_request_signed_by_slack_sdk(signer) -> None:
    verify_slack(BODY, {k.lower(): v for k, v in signer.slack(BODY).items()}, signer.secret)


def test_slack_refuses_a_stale_timestamp_even_when_signed(signer) -> None:
    stale = int(time.time()) - 6 * 60
    headers = {k.lower(): v for k, v in signer.slack(BODY, ts=stale).items()}
    with pytest.raises(SignatureError):
        verify_slack(BODY, headers, signer.secret)


def test_slack_with_an_injected_clock(signer) -> None:
    headers = {k.lower(): v for k, v in signer.slack(BODY, ts=1_000_000).items()}
    verify_slack(BODY, headers, signer.secret, clock=lambda: 1_000_100.0)
    with pytest.raises(SignatureError, match="five minutes"):
        verify_slack(BODY, headers, signer.secret, clock=lambda: 1_000_301.0)


def test_slack_refuses_missing_headers_and_wrong_secret(signer) -> None:
    with pytest.raises(SignatureError, match="missing"):
        verify_slack(BODY, {}, signer.secret)
    headers = {k.lower(): v for k, v in signer.slack(BODY, secret="other").items()}
    with pytest.raises(SignatureError):
        verify_slack(BODY, headers, signer.secret)


# --- generic: Standard Webhooks, signed by the standardwebhooks library as a sender does ---

WHSEC = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def _standard(body: bytes, at: datetime, msg_id: str = "msg_p5jXN8AQM9LWM0D4loKWxJek") -> dict:
    signature = Webhook(WHSEC).sign(msg_id, at, body.decode())
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": signature,
    }


def test_generic_accepts_a_fresh_standard_webhooks_signature() -> None:
    verify_generic(BODY, _standard(BODY, datetime.now(UTC)), WHSEC)


def test_generic_accepts_one_of_several_signatures_during_secret_rotation() -> None:
    headers = _standard(BODY, datetime.now(UTC))
    headers["webhook-signature"] = "v1,bm90IHRoaXMgb25l " + headers["webhook-signature"]
    verify_generic(BODY, headers, WHSEC)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda h: h.pop("webhook-id"), "missing the webhook-id"),
        (lambda h: h.pop("webhook-signature"), "missing the webhook-signature"),
        (lambda h: h.update({"webhook-id": "another"}), "No matching signature"),
        (lambda h: h.update({"webhook-signature": "v1,AAAA"}), "No matching signature"),
        (lambda h: h.update({"webhook-signature": "garbage"}), "could not be checked"),
        (lambda h: h.update({"webhook-timestamp": "soon"}), "Invalid Signature Headers"),
        (lambda h: h.update({"webhook-id": "é"}), "not ASCII"),
    ],
)
def test_generic_refuses_missing_malformed_or_wrong(change, message) -> None:
    headers = _standard(BODY, datetime.now(UTC))
    change(headers)
    with pytest.raises(SignatureError, match=message):
        verify_generic(BODY, headers, WHSEC)


def test_generic_refuses_a_changed_body_or_another_secret() -> None:
    headers = _standard(BODY, datetime.now(UTC))
    with pytest.raises(SignatureError, match="No matching signature"):
        verify_generic(BODY + b" ", headers, WHSEC)
    with pytest.raises(SignatureError, match="No matching signature"):
        verify_generic(BODY, headers, "whsec_" + "A" * 32)


@pytest.mark.parametrize(("minutes", "message"), [(-6, "too old"), (6, "too new")])
def test_generic_refuses_a_timestamp_outside_the_libraries_five_minutes(minutes, message) -> None:
    at = datetime.now(UTC) + timedelta(minutes=minutes)
    with pytest.raises(SignatureError, match=message):
        verify_generic(BODY, _standard(BODY, at), WHSEC)


def test_generic_with_a_given_time_of_receipt() -> None:
    at = datetime(2026, 1, 1, tzinfo=UTC)
    headers = _standard(BODY, at)
    verify_generic(BODY, headers, WHSEC, clock=lambda: at.timestamp() + 299)
    with pytest.raises(SignatureError, match="too old"):
        verify_generic(BODY, headers, WHSEC, clock=lambda: at.timestamp() + 301)
    with pytest.raises(SignatureError, match="too new"):
        verify_generic(BODY, headers, WHSEC, clock=lambda: at.timestamp() - 301)


@pytest.mark.parametrize("secret", ["", "whsec_", "whsec_!!!"])
def test_generic_refuses_with_a_secret_that_is_no_standard_webhooks_secret(secret) -> None:
    with pytest.raises(SignatureError):
        verify_generic(BODY, _standard(BODY, datetime.now(UTC)), secret)
