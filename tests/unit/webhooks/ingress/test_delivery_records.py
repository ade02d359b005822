"""The delivery log's pure parts: what is kept, where, and how it reads back."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ambient.webhooks.ingress import delivery_records as d

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def test_kept_headers_are_an_allow_list_without_keys() -> None:
    kept = d.kept_headers(
        {
            "Authorization": "Bearer secret-key",
            "Cookie": "a=b",
            "Content-Type": "application/json",
            "X-GitHub-Delivery": "g-1",
            "X-Hub-Signature-256": "sha256=ab",
            "X-Forwarded-For": "10.0.0.1",
        }
    )
    assert kept == {
        "content-type": "application/json",
        "x-github-delivery": "g-1",
        "x-hub-signature-256": "sha256=ab",
    }


@pytest.mark.parametrize(
    ("outcome", "body_read", "namespace", "keep_ignored", "kept"),
    [
        ("refused", True, "team-a", False, True),
        ("error", True, "team-a", False, True),
        ("conflict", True, "team-a", False, True),
        ("refused", False, "team-a", False, False),  # 413/429: the body was never read
        ("refused", True, "", False, False),  # unknown key: no namespace, log only
        ("created", True, "team-a", True, False),
        ("duplicate", True, "team-a", True, False),
        ("ping", True, "team-a", True, False),
        ("ignored", True, "team-a", False, False),
        ("ignored", True, "team-a", True, True),
    ],
)
def test_should_keep(
    outcome: str, body_read: bool, namespace: str, keep_ignored: bool, kept: bool
) -> None:
    assert (
        d.should_keep(outcome, body_read=body_read, namespace=namespace, keep_ignored=keep_ignored)
        is kept
    )


def test_peek_reads_only_headers() -> None:
    headers = {"x-github-delivery": " g-1 ", "x-github-event": "push"}
    assert d.peek_delivery_id("github", headers) == "g-1"
    assert d.peek_event("github", headers) == "push"
    assert d.peek_delivery_id("jira", {"x-atlassian-webhook-identifier": "j-9"}) == "j-9"
    assert d.peek_delivery_id("slack", headers) == ""


def test_stored_request_keeps_the_exact_bytes() -> None:
    body = b'{"a": 1,  "b":"\xc3\xa9"}\n'  # whitespace and UTF-8 matter to the signature
    stored = d.StoredRequest.of(
        source="github",
        namespace="team-a",
        received_at=T0,
        trace_id="t" * 32,
        delivery_id="g-1",
        headers={"Authorization": "Bearer k", "Content-Type": "application/json"},
        body=body,
    )
    back = d.StoredRequest.decode(stored.encode())
    assert back.raw_body() == body
    assert back.headers == {"content-type": "application/json"}
    assert b"Bearer" not in stored.encode()
    assert datetime.fromisoformat(back.received_at) == T0


def test_delivery_record_has_exactly_the_audit_fields() -> None:
    record = d.delivery_record(
        timestamp=T0,
        namespace="team-a",
        source="github",
        event="pull_request.opened",
        delivery_id="g-1",
        session="github-g-1",
        outcome="created",
        reason="",
        status=202,
        trace_id="t1",
        request_key=None,
    )
    assert set(record) == {
        "timestamp",
        "namespace",
        "sessionId",
        "actor",
        "action",
        "resource",
        "outcome",
        "details",
        "traceId",
    }
    assert record["action"] == d.ACTION_DELIVERY
    assert record["resource"] == "sessions/github-g-1"
    assert "requestKey" not in record["details"]


def _record(trace: str, minutes: int, outcome: str, delivery: str, key: str = "") -> dict:
    return d.delivery_record(
        timestamp=T0 + timedelta(minutes=minutes),
        namespace="team-a",
        source="github",
        event="pull_request.opened",
        delivery_id=delivery,
        session="",
        outcome=outcome,
        reason="InvalidSignature" if outcome == "refused" else "",
        status=401 if outcome == "refused" else 202,
        trace_id=trace,
        request_key=key or None,
    )


def test_rows_filter_and_find() -> None:
    records = [
        _record("aaaaaaaa1111", 0, "refused", "g-1", "k1"),
        _record("aaaaaaaa2222", 1, "refused", "g-1", "k2"),
        _record("bbbbbbbb3333", 2, "created", "g-2"),
        {"action": "WorkloadCreated", "traceId": "x", "details": {}},  # not a delivery
    ]
    found = d.rows(records)
    assert [r.id for r in found] == ["aaaaaaaa1111", "aaaaaaaa2222", "bbbbbbbb3333"]
    assert [r.id for r in d.rows(records, outcome="created")] == ["bbbbbbbb3333"]
    assert d.rows(records, source="slack") == []
    assert d.find(found, "bbbbbbbb").id == "bbbbbbbb3333"
    assert d.find(found, "g-1").id == "aaaaaaaa2222"  # the latest replayable one
    with pytest.raises(d.DeliveryNotFoundError, match="ambiguous"):
        d.find(found, "aaaaaaaa")
    with pytest.raises(d.DeliveryNotFoundError, match="no delivery"):
        d.find(found, "g-404")
    table = d.table(found).splitlines()
    assert table[0].split()[:3] == ["TIMESTAMP", "ID", "SOURCE"]
    assert "yes" in table[1] and "InvalidSignature" in table[1]
    assert " - " in table[3]  # a created delivery kept no request


@pytest.mark.parametrize("reason", sorted(d.UNVERIFIED))
def test_a_large_body_nobody_signed_is_not_kept(reason: str) -> None:
    # Finding 10 of issue 17: a key holder without the secret must not fill the store.
    def keep(reason: str, size: int) -> bool:
        return d.should_keep(
            "refused",
            body_read=True,
            namespace="team-a",
            keep_ignored=True,
            reason=reason,
            size=size,
            unverified_limit=1000,
        )

    assert not keep(reason, 1001)
    assert keep(reason, 1000)  # an ordinary delivery stays replayable after a secret fix
    assert keep("NameTaken", 10_000)  # signed bodies are kept whatever their size
