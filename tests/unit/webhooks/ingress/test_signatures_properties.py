"""Whatever a sender puts in its signature headers, a verifier answers SignatureError or
accepts, never anything else (issue 17, finding 13: a non-ASCII X-Hub-Signature-256
made hmac.compare_digest raise TypeError, and the ingress answered a plain-text 500)."""

from __future__ import annotations

import hashlib
import hmac
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ambient.webhooks.ingress.signatures import (
    VERIFIERS,
    SignatureError,
    verify_github,
    verify_jira,
    verify_slack,
)

SECRET = "It's a Secret to Everybody"
NOW = 1_700_000_000
HEADERS = [
    "x-hub-signature-256",
    "x-hub-signature",
    "x-slack-signature",
    "x-slack-request-timestamp",
]

# Header values as an ASGI server hands them over (Latin-1 text of any bytes), any
# Unicode text (what a test client or a future server might pass), or raw bytes.
latin1_text = st.binary(max_size=120).map(lambda b: b.decode("latin-1"))
values = st.one_of(
    latin1_text,
    st.text(max_size=120),
    st.binary(max_size=120),
    st.from_regex(r"sha256=[0-9a-fA-F]{0,70}.{0,3}", fullmatch=True),
    st.from_regex(r"v0=[0-9a-f]{60,66}", fullmatch=True),
    st.from_regex(r"[0-9\u0660-\u0669 +_-]{1,14}", fullmatch=True),
)
headers = st.dictionaries(st.sampled_from(HEADERS), values, max_size=4)
secrets = st.one_of(st.just(SECRET), st.text(max_size=40))


def _never_raises_but_signature_error(source: str, body: bytes, hdrs: dict, secret: str) -> None:
    try:
        if source == "slack":
            verify_slack(body, hdrs, secret, clock=lambda: float(NOW))
        else:
            VERIFIERS[source](body, hdrs, secret)
    except SignatureError:
        pass


@settings(max_examples=400, deadline=None, derandomize=True)
@given(
    source=st.sampled_from(sorted(VERIFIERS)),
    body=st.binary(max_size=200),
    hdrs=headers,
    secret=secrets,
)
def test_arbitrary_headers_never_raise_anything_but_a_signature_error(
    source: str, body: bytes, hdrs: dict, secret: str
) -> None:
    _never_raises_but_signature_error(source, body, hdrs, secret)


@settings(max_examples=200, deadline=None, derandomize=True)
@given(body=st.binary(max_size=200), junk=st.text(min_size=1, max_size=8))
def test_a_valid_signature_with_anything_appended_is_refused(body: bytes, junk: str) -> None:
    good = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    verify_github(body, {"x-hub-signature-256": good}, SECRET)
    if junk.strip():
        with pytest.raises(SignatureError):
            verify_github(body, {"x-hub-signature-256": good + junk}, SECRET)


@pytest.mark.parametrize(
    "header",
    [
        "sha256=é" + "0" * 63,
        "sha256=" + "\uff10" * 64,  # FULLWIDTH DIGIT ZERO
        "sha256=" + "\u0661" * 64,  # ARABIC-INDIC DIGIT ONE
        "sha256=" + "a" * 63 + "\u212a",  # KELVIN SIGN lowers to an ASCII 'k'
        "sha256=" + "0" * 64 + "\x00",
        "sha256=" + "0" * 65,
        "\udcff",
    ],
)
def test_malformed_hub_signatures_are_bad_signatures(header: str) -> None:
    for verify, name in ((verify_github, "x-hub-signature-256"), (verify_jira, "x-hub-signature")):
        with pytest.raises(SignatureError):
            verify(b"{}", {name: header}, SECRET)


def test_the_non_ascii_header_of_finding_13() -> None:
    with pytest.raises(SignatureError, match="sha256=<64 hex digits>"):
        verify_github(b"{}", {"x-hub-signature-256": "sha256=ü"}, SECRET)


def test_bytes_header_values_are_read_as_latin_1() -> None:
    body = b'{"a":1}'
    good = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    verify_github(body, {"x-hub-signature-256": good.encode()}, SECRET)  # type: ignore[dict-item]
    with pytest.raises(SignatureError):
        verify_github(body, {"x-hub-signature-256": b"sha256=\xff\xfe"}, SECRET)  # type: ignore[dict-item]


@pytest.mark.parametrize(
    ("timestamp", "signature"),
    [
        ("\u0661\u0667\u0660\u0660", "v0=" + "0" * 64),  # Arabic-Indic digits int() takes
        (" 1700000000", "v0=" + "0" * 64),
        (str(NOW), "v0=é" + "0" * 63),
        (str(NOW), "v0=" + "0" * 63),
        (str(NOW), "V0=" + "0" * 64),
    ],
)
def test_malformed_slack_headers_are_bad_signatures(timestamp: str, signature: str) -> None:
    headers = {"x-slack-request-timestamp": timestamp, "x-slack-signature": signature}
    with pytest.raises(SignatureError):
        verify_slack(b"{}", headers, SECRET, clock=lambda: float(NOW))


def test_a_slack_body_that_is_not_utf8_is_a_bad_signature() -> None:
    ts = str(int(time.time()))
    body = b"\xff\xfe"
    digest = hmac.new(SECRET.encode(), b"v0:" + ts.encode() + b":" + body, hashlib.sha256)
    headers = {"x-slack-request-timestamp": ts, "x-slack-signature": "v0=" + digest.hexdigest()}
    with pytest.raises(SignatureError, match="UTF-8"):
        verify_slack(body, headers, SECRET)


def test_an_unusable_secret_is_a_bad_signature_not_a_crash() -> None:
    ts = str(NOW)
    headers = {"x-slack-request-timestamp": ts, "x-slack-signature": "v0=" + "0" * 64}
    with pytest.raises(SignatureError):
        verify_slack(b"{}", headers, "   ", clock=lambda: float(NOW))  # slack_sdk: ValueError
    with pytest.raises(SignatureError):
        verify_github(b"{}", {"x-hub-signature-256": "sha256=" + "0" * 64}, "\udcff")
