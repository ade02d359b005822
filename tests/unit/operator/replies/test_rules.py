"""Which replies a Session owes, what they say, how big they get, and when to retry."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import pytest

from ambient.crds.models import ReplyPolicy, Session
from ambient.operator.replies import rules as r
from ambient.operator.replies.rules import Kind, Outcome

UID = "0b7c6a1e-1111-2222-3333-444455556666"
GITHUB = {"repository": "octo/app", "number": 7, "headSha": "a" * 40}


def _session(
    phase: str = "Completed",
    *,
    source: str = "github",
    reply_to: dict[str, Any] | None = None,
    history: list[tuple[str, str, dict[str, str]]] = (),  # type: ignore[assignment]
    reason: str | None = None,
    message: str | None = None,
    artifacts: int = 0,
) -> Session:
    status: dict[str, Any] = {
        "phase": phase,
        "reason": reason,
        "message": message,
        "history": [
            {"seq": i, "id": eid, "timestamp": "2026-03-01T12:00:00Z", "event": ev, "data": d}
            for i, (eid, ev, d) in enumerate(history)
        ],
        "artifacts": {
            "generated": [
                {"type": "output", "location": f"s3://b/ns/s/out-{i}.json", "createdAt": "x"}
                for i in range(artifacts)
            ]
        },
    }
    trigger: dict[str, Any] = {"source": source, "event": "pull_request.opened", "payload": {}}
    if reply_to is not None:
        trigger["replyTo"] = reply_to
    return Session.model_validate(
        {
            "metadata": {"name": "github-abc", "namespace": "team-a", "uid": UID},
            "spec": {"trigger": trigger, "framework": {"type": "claude-code"}},
            "status": status,
        }
    )


def _result(summary: str, **extra: str) -> tuple[str, str, dict[str, str]]:
    return ("runner:result", "RunnerSucceeded", {"summary": summary, **extra})


POLICY = ReplyPolicy()
BOTH = ReplyPolicy(on_start=True, on_end=True)


def _kinds(replies: list[r.Reply]) -> list[tuple[str, str]]:
    return [(x.kind.value, x.outcome.value) for x in replies]


@pytest.mark.parametrize(
    ("phase", "policy", "expected"),
    [
        ("Completed", POLICY, [("github", "ended")]),
        ("Failed", POLICY, [("github", "ended")]),
        ("Running", POLICY, []),  # onStart is off by default
        ("Running", BOTH, [("github", "started")]),
        ("Pending", BOTH, []),
        ("Completed", ReplyPolicy(on_end=False), []),
    ],
)
def test_owed_follows_phase_and_policy(
    phase: str, policy: ReplyPolicy, expected: list[tuple[str, str]]
) -> None:
    assert _kinds(r.owed(_session(phase, reply_to=GITHUB), policy)) == expected


def test_nothing_owed_without_a_target_or_a_uid() -> None:
    assert r.owed(_session(), POLICY) == []
    no_uid = _session(reply_to=GITHUB).model_copy(deep=True)
    no_uid.metadata.uid = ""
    assert r.owed(no_uid, POLICY) == []


def test_a_final_record_settles_the_reply_but_an_attempt_does_not() -> None:
    attempted = _session(
        reply_to=GITHUB, history=[("reply/github/ended/attempt-1", "ReplyAttempted", {})]
    )
    assert _kinds(r.owed(attempted, POLICY)) == [("github", "ended")]
    for final in ("ReplySent", "ReplyFailed", "ReplySkipped"):
        done = _session(reply_to=GITHUB, history=[("reply/github/ended", final, {})])
        assert r.owed(done, POLICY) == []


def test_check_run_only_when_asked_and_a_head_commit_is_known() -> None:
    checks = ReplyPolicy(github_check_run=True)
    assert _kinds(r.owed(_session(reply_to=GITHUB), checks)) == [
        ("github", "ended"),
        ("github-check", "ended"),
    ]
    issue = {"repository": "octo/app", "number": 7}
    assert _kinds(r.owed(_session(reply_to=issue), checks)) == [("github", "ended")]


@pytest.mark.parametrize(
    ("source", "target", "kind"),
    [
        ("jira", {"issueKey": "OPS-42"}, "jira"),
        ("slack", {"channel": "C123", "threadTs": "1700000000.000100"}, "slack"),
        ("slack", {"issueKey": "OPS-42"}, None),  # a target of the wrong shape: no reply
        ("manual", GITHUB, None),
    ],
)
def test_the_source_decides_where_the_reply_goes(
    source: str, target: dict[str, Any], kind: str | None
) -> None:
    owed = r.owed(_session(source=source, reply_to=target), POLICY)
    assert [x.kind.value for x in owed] == ([kind] if kind else [])


def test_an_unfinished_started_reply_is_settled_before_the_ended_one() -> None:
    history = [("reply/github/started/attempt-1", "ReplyAttempted", {})]
    owed = r.owed(_session("Completed", reply_to=GITHUB, history=history), BOTH)
    assert _kinds(owed) == [("github", "started")]
    history.append(("reply/github/started", "ReplySent", {}))
    owed = r.owed(_session("Completed", reply_to=GITHUB, history=history), BOTH)
    assert _kinds(owed) == [("github", "ended")]


def test_a_started_reply_never_attempted_is_not_owed_once_ended() -> None:
    assert _kinds(r.owed(_session("Completed", reply_to=GITHUB), BOTH)) == [("github", "ended")]


def test_attempts_are_counted_from_history() -> None:
    reply = r.owed(_session(reply_to=GITHUB), POLICY)[0]
    history = [(reply.attempt_id(i), "ReplyAttempted", {}) for i in (1, 2, 3)]
    assert r.attempts_made(_session(reply_to=GITHUB, history=history), reply) == 3
    assert r.attempts_made(_session(reply_to=GITHUB), reply) == 0


def test_ids_and_marker_are_keyed_by_uid_and_outcome() -> None:
    reply = r.owed(_session(reply_to=GITHUB), POLICY)[0]
    assert reply.history_id == "reply/github/ended"
    assert reply.attempt_id(2) == "reply/github/ended/attempt-2"
    assert reply.marker == f"ambient:{UID}:ended"


def _reply(kind: Kind, session: Session) -> r.Reply:
    meta = session.metadata
    target = session.spec.trigger.reply_to
    assert target is not None
    return r.Reply(kind, Outcome.ENDED, meta.namespace, meta.name, meta.uid, target)


def test_github_comment_has_the_summary_the_locations_and_a_hidden_marker() -> None:
    session = _session(
        reply_to=GITHUB,
        history=[
            _result(
                "Fixed the flaky test.",
                branch="ambient/fix",
                pullRequest="https://github.com/octo/app/pull/8",
                transcript="s3://b/team-a/github-abc/transcript.jsonl",
            )
        ],
        artifacts=2,
    )
    body = r.github_comment(session, _reply(Kind.GITHUB, session))["body"]
    assert body.startswith("**Done**: Session `team-a/github-abc` completed.")
    assert "Fixed the flaky test." in body
    assert "- Pull request: `https://github.com/octo/app/pull/8`" in body
    assert "- Branch: `ambient/fix`" in body
    assert "s3://b/team-a/github-abc/transcript.jsonl" in body
    assert "s3://b/ns/s/out-1.json" in body
    assert body.endswith(f"<!-- ambient:{UID}:ended -->")


def test_a_failure_says_why() -> None:
    session = _session(
        "Failed",
        reply_to=GITHUB,
        reason="TimedOut",
        message="ran past 600 seconds",
        history=[("runner:failed", "RunnerFailed", {"reason": "X", "message": "tests red"})],
    )
    body = r.github_comment(session, _reply(Kind.GITHUB, session))["body"]
    assert "**Failed**" in body
    assert "TimedOut: ran past 600 seconds" in body
    assert "tests red" in body
    run = r.check_run(session, _reply(Kind.GITHUB_CHECK, session))
    assert (run["status"], run["conclusion"], run["external_id"]) == (
        "completed",
        "timed_out",
        UID,
    )


@pytest.mark.parametrize("kind", list(Kind))
def test_every_reply_is_bounded_and_says_it_was_cut(kind: Kind) -> None:
    source = {"jira": "jira", "slack": "slack"}.get(kind.value, "github")
    target = {
        "jira": {"issueKey": "OPS-1"},
        "slack": {"channel": "C1", "threadTs": "1.2"},
    }.get(kind.value, GITHUB)
    # Bigger than any destination takes (the API server holds a summary to 4,000; the
    # Slack limit is below that, and the cut must hold for any size).
    session = _session(
        source=source, reply_to=target, history=[_result("y" * 200_000)], artifacts=100
    )
    reply = _reply(kind, session)
    message = {
        Kind.GITHUB: lambda: r.github_comment(session, reply)["body"],
        Kind.GITHUB_CHECK: lambda: r.check_run(session, reply)["output"]["summary"],
        Kind.JIRA: lambda: r.jira_comment(session, reply)["body"],
        Kind.SLACK: lambda: r.slack_message(session, reply)["text"],
    }[kind]()
    assert len(message) <= r.LIMITS[kind]
    assert "[... truncated:" in message
    assert "team-a/github-abc" in message
    if kind is Kind.GITHUB:
        assert message.endswith(f"<!-- {reply.marker} -->")  # the marker survives the cut


def test_bounded_keeps_short_text_whole_and_the_head_always() -> None:
    assert r.bounded("H", "body", "tail", 100, "n") == "H\n\nbody\n\ntail"
    cut = r.bounded("HEAD", "b" * 500, "t" * 50, 200, "ns/s")
    assert cut.startswith("HEAD\n\nbbb") and len(cut) <= 200 and cut.endswith("t" * 50)
    tiny = r.bounded("HEAD", "b" * 500, "t" * 500, 120, "ns/s")
    assert tiny.startswith("HEAD") and len(tiny) <= 120 and "t" * 10 not in tiny


def test_slack_message_replies_in_the_thread_with_metadata() -> None:
    target = {"channel": "C123", "threadTs": "1700000000.000100"}
    session = _session(source="slack", reply_to=target, history=[_result("Answered.")])
    message = r.slack_message(session, _reply(Kind.SLACK, session))
    assert message["channel"] == "C123"
    assert message["thread_ts"] == "1700000000.000100"
    assert message["text"].startswith("*Done*: Session `team-a/github-abc` completed.")
    assert message["metadata"]["event_payload"]["reply"] == f"ambient:{UID}:ended"


def test_jira_comment_carries_the_marker_as_a_property() -> None:
    session = _session(source="jira", reply_to={"issueKey": "OPS-42"}, history=[_result("ok")])
    comment = r.jira_comment(session, _reply(Kind.JIRA, session))
    assert comment["properties"] == [
        {"key": r.JIRA_PROPERTY, "value": {"reply": f"ambient:{UID}:ended"}}
    ]
    assert comment["body"].startswith("*Done*: Session {{team-a/github-abc}} completed.")


def test_started_reply_is_one_line() -> None:
    session = _session("Running", reply_to=GITHUB)
    meta, target = session.metadata, session.spec.trigger.reply_to
    assert target is not None
    reply = r.Reply(Kind.GITHUB, Outcome.STARTED, meta.namespace, meta.name, meta.uid, target)
    assert r.body_text(session, reply) == (
        "**Started**: Session `team-a/github-abc` is working on this."
    )
    assert r.check_run(session, reply)["status"] == "in_progress"


def test_has_marker_matches_only_its_own_uid_and_outcome() -> None:
    reply = _reply(Kind.GITHUB, _session(reply_to=GITHUB))
    assert r.has_marker(["hello", f"x <!-- ambient:{UID}:ended --> y"], reply)
    assert not r.has_marker([f"<!-- ambient:{UID}:started -->"], reply)
    assert not r.has_marker(["<!-- ambient:other-uid:ended -->"], reply)


@pytest.mark.parametrize(
    ("status", "expected"),
    [(None, True), (408, True), (429, True), (500, True), (503, True), (400, False), (404, False)],
)
def test_retryable(status: int | None, expected: bool) -> None:
    assert r.retryable(status) is expected


def test_a_403_is_retried_only_when_it_says_when() -> None:
    assert r.retryable(403, "60")  # GitHub's secondary rate limit
    assert not r.retryable(403, None)  # forbidden: retrying changes nothing
    assert not r.retryable(404, "60")


def test_retry_after_reads_seconds_and_dates() -> None:
    now = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    assert r.retry_after("7", now) == 7.0
    assert r.retry_after(format_datetime(now + timedelta(seconds=30), usegmt=True), now) == 30.0
    assert r.retry_after(format_datetime(now - timedelta(seconds=30), usegmt=True), now) == 0.0
    assert r.retry_after(None, now) is None
    assert r.retry_after("soon", now) is None


def test_delay_honours_the_server_then_backs_off_exponentially() -> None:
    assert [r.delay(n, None, 1.0, 60.0) for n in (1, 2, 3, 7, 8)] == [1, 2, 4, 60, 60]
    assert r.delay(1, 12.0, 1.0, 60.0) == 12.0
    assert r.delay(1, 3600.0, 1.0, 60.0) == 60.0  # capped: a reply is never parked for an hour
    with pytest.raises(ValueError, match="attempt must be 1 or more"):
        r.delay(0, None, 1.0, 60.0)
