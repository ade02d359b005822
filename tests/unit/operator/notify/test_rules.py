"""Which notifications a Session owes, their bodies, signatures and retry rules."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest

from ambient.crds.models import NotificationPolicy, Session
from ambient.operator.notify import rules as n

MakeSession = Callable[..., Session]
HOOK = "https://hooks.example.test/ambient"
SLACK = "https://hooks.slack.com/services/T000/B000/XXXX"


def _policy(*hooks: tuple[str, list[str]]) -> NotificationPolicy:
    return NotificationPolicy.model_validate(
        {"webhooks": [{"url": url, "events": events} for url, events in hooks]}
    )


def _status(phase: str, reason: str | None = None, **extra: Any) -> dict[str, Any]:
    return {"phase": phase, "reason": reason, **extra}


def _history(*entries: tuple[str, str, dict[str, str]]) -> list[dict[str, Any]]:
    return [
        {"seq": i, "id": eid, "timestamp": "2026-03-01T12:00:00Z", "event": ev, "data": data}
        for i, (eid, ev, data) in enumerate(entries)
    ]


@pytest.mark.parametrize(
    ("phase", "reason", "expected"),
    [
        ("Completed", "Succeeded", "session.completed"),
        ("Failed", "RunnerFailed", "session.failed"),
        ("Pending", "AwaitingApproval", "session.awaiting_approval"),
        ("Running", None, None),
        ("Pending", None, None),
    ],
)
def test_current_event_follows_phase_and_reason(
    make_session: MakeSession, now: datetime, phase: str, reason: str | None, expected: str | None
) -> None:
    session = make_session(status=_status(phase, reason))
    event = n.current_event(session, now, timedelta(minutes=10))
    assert (event.value if event else None) == expected


def test_queued_is_news_only_after_the_threshold(make_session: MakeSession, now: datetime) -> None:
    entered = now - timedelta(minutes=5)
    status = _status("Pending", "Queued")
    status["history"] = _history(("queued", "Queued", {}))
    status["history"][0]["timestamp"] = entered.strftime("%Y-%m-%dT%H:%M:%SZ")
    session = make_session(status=status)
    assert n.current_event(session, now, timedelta(minutes=10)) is None
    event = n.current_event(session, now + timedelta(minutes=6), timedelta(minutes=10))
    assert event is not None and event.value == "session.queued"


def test_a_history_time_without_a_zone_is_utc_not_naive(
    make_session: MakeSession, now: datetime
) -> None:
    """A stored time that names no zone is UTC: comparing it with the aware ``now`` used
    to raise TypeError (the old parser returned a naive datetime)."""
    entered = now - timedelta(minutes=15)
    status = _status("Pending", "Queued")
    status["history"] = _history(("queued", "Queued", {}))
    status["history"][0]["timestamp"] = entered.strftime("%Y-%m-%dT%H:%M:%S")  # no Z
    session = make_session(status=status)
    event = n.current_event(session, now, timedelta(minutes=10))
    assert event is not None and event.value == "session.queued"
    assert n.current_event(session, now, timedelta(minutes=20)) is None


def test_owed_lists_each_subscribed_endpoint_once(make_session: MakeSession, now: datetime) -> None:
    policy = _policy(
        (HOOK, ["session.completed", "session.failed"]),
        (SLACK, ["session.failed"]),
        ("https://other.example.test/", ["session.awaiting_approval"]),
    )
    session = make_session(status=_status("Failed", "RunnerFailed"))
    owed = n.owed(session, policy, now)
    assert [d.url for d in owed] == [HOOK, SLACK]
    assert all(d.event.value == "session.failed" for d in owed)
    assert len({d.delivery_id for d in owed}) == 2
    assert [d.slack for d in owed] == [False, True]


def test_a_recorded_delivery_is_not_owed_again(make_session: MakeSession, now: datetime) -> None:
    policy = _policy((HOOK, ["session.completed"]), (SLACK, ["session.completed"]))
    first = n.owed(make_session(status=_status("Completed", "Succeeded")), policy, now)
    status = _status("Completed", "Succeeded")
    status["history"] = _history((first[0].history_id, n.HISTORY_DELIVERED, {}))
    again = n.owed(make_session(status=status), policy, now)
    assert [d.url for d in again] == [SLACK]


def test_delivery_ids_are_stable_across_calls(make_session: MakeSession, now: datetime) -> None:
    policy = _policy((HOOK, ["session.completed"]))
    session = make_session(status=_status("Completed", "Succeeded"))
    assert n.owed(session, policy, now) == n.owed(session, policy, now + timedelta(hours=1))


def test_history_ids_do_not_reveal_the_url(make_session: MakeSession, now: datetime) -> None:
    policy = _policy((SLACK, ["session.completed"]))
    (delivery,) = n.owed(make_session(status=_status("Completed", "Succeeded")), policy, now)
    assert "slack" not in delivery.history_id and "XXXX" not in delivery.history_id
    assert "XXXX" not in delivery.delivery_id


def test_payload_carries_the_state_but_not_the_trigger_payload(
    make_session: MakeSession, now: datetime
) -> None:
    session = make_session(
        payload={"secret": "do-not-forward"},
        status=_status("Failed", "RunnerFailed", message="exit code 3"),
    )
    body = n.payload(session, n.NotificationEvent.FAILED, now)
    assert body["event"] == "session.failed"
    assert (body["namespace"], body["session"]) == ("team-alpha", "review-pr-42")
    assert (body["reason"], body["message"]) == ("RunnerFailed", "exit code 3")
    assert body["trigger"] == {"source": "github", "event": "pull_request.opened"}
    assert "do-not-forward" not in n.encode(body).decode()


def test_slack_message_is_readable(make_session: MakeSession, now: datetime) -> None:
    session = make_session(status=_status("Failed", "RunnerFailed", message="exit code 3"))
    message = n.slack_message(n.payload(session, n.NotificationEvent.FAILED, now))
    assert "team-alpha/review-pr-42" in message["text"]
    assert "failed" in message["text"] and "exit code 3" in message["text"]
    assert message["blocks"][0]["type"] == "section"


def test_signature_round_trips_and_binds_the_timestamp() -> None:
    body = n.encode({"event": "session.completed"})
    header = n.signature(b"s3cret", 1_700_000_000, body)
    assert header.startswith("sha256=") and len(header) == 7 + 64
    assert n.verify(b"s3cret", 1_700_000_000, body, header)
    assert not n.verify(b"s3cret", 1_700_000_001, body, header)
    assert not n.verify(b"other", 1_700_000_000, body, header)
    assert not n.verify(b"s3cret", 1_700_000_000, body + b" ", header)


def test_headers_sign_only_non_slack_endpoints(make_session: MakeSession, now: datetime) -> None:
    policy = _policy((HOOK, ["session.completed"]), (SLACK, ["session.completed"]))
    hook, slack = n.owed(make_session(status=_status("Completed", "Succeeded")), policy, now)
    signed = n.headers(hook, b"{}", 1, b"key")
    assert signed[n.SIGNATURE_HEADER] == n.signature(b"key", 1, b"{}")
    assert signed[n.DELIVERY_HEADER] == hook.delivery_id
    assert n.SIGNATURE_HEADER not in n.headers(slack, b"{}", 1, b"key")
    assert n.SIGNATURE_HEADER not in n.headers(hook, b"{}", 1, None)


@pytest.mark.parametrize(
    ("attempt", "seconds"), [(1, 1.0), (2, 2.0), (3, 4.0), (7, 60.0), (30, 60.0)]
)
def test_backoff_is_exponential_and_capped(attempt: int, seconds: float) -> None:
    assert n.backoff(attempt) == seconds


def test_backoff_refuses_attempt_zero() -> None:
    with pytest.raises(ValueError, match="attempt must be 1 or more"):
        n.backoff(0)


@pytest.mark.parametrize(
    ("status", "retry"),
    [
        (None, True),
        (500, True),
        (503, True),
        (429, True),
        (408, True),
        (400, False),
        (404, False),
        (410, False),
    ],
)
def test_retryable(status: int | None, retry: bool) -> None:
    assert n.retryable(status) is retry
