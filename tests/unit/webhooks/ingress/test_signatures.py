from __future__ import annotations

import time

import pytest

from ambient.webhooks.ingress.signatures import (
    SignatureError,
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
