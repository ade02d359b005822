from __future__ import annotations

import json
from urllib.parse import urlencode

import pytest

from ambient.crds.models import IngressPolicy, Session, SessionDefaults
from ambient.webhooks.ingress import events
from ambient.webhooks.ingress.events import MalformedError, MediaTypeError

JSON = "application/json"
FORM = "application/x-www-form-urlencoded"
GUID = "72d3162e-cc78-11e3-81ab-4c9367dc0958"


def gh(payload: dict, event: str, delivery: str = GUID) -> events.Delivery:
    headers = {"x-github-event": event, "x-github-delivery": delivery}
    return events.parse("github", headers, json.dumps(payload).encode(), JSON)


@pytest.mark.parametrize("action", ["opened", "synchronize", "reopened"])
def test_github_pull_request_examples_start_sessions(github_example, action) -> None:
    delivery = gh(github_example(f"pull_request.{action}"), "pull_request")
    assert delivery.event == f"pull_request.{action}"
    assert delivery.kind == "session"
    assert events.ignore_reason(delivery, IngressPolicy()) is None


def test_github_closed_and_push_are_ignored_by_default(github_example) -> None:
    for name, event in (("pull_request.closed", "pull_request"), ("push", "push")):
        reason = events.ignore_reason(gh(github_example(name), event), IngressPolicy())
        assert reason is not None and "not selected" in reason


@pytest.mark.parametrize("name", ["issues.opened", "issues.labeled"])
def test_github_issues_examples_start_sessions(github_example, name) -> None:
    assert events.ignore_reason(gh(github_example(name), "issues"), IngressPolicy()) is None


def test_github_ping_is_a_ping(github_example) -> None:
    assert gh(github_example("ping"), "ping").kind == "ping"


@pytest.mark.parametrize("name", ["issue_comment.created", "pull_request_review_comment.created"])
def test_comments_start_sessions_only_when_they_address_the_bot(github_example, name) -> None:
    payload = github_example(name)
    event = name.split(".")[0]
    payload["comment"]["body"] = "looks good"
    assert "does not" in (events.ignore_reason(gh(payload, event), IngressPolicy()) or "")
    payload["comment"]["body"] = "/ambient please review"
    assert events.ignore_reason(gh(payload, event), IngressPolicy()) is None
    policy = IngressPolicy.model_validate({"github": {"botName": "ambient-bot"}})
    payload["comment"]["body"] = "hey @Ambient-Bot can you fix it?"
    assert events.ignore_reason(gh(payload, event), policy) is None
    payload["comment"]["body"] = "hey @ambient-bot2"
    assert events.ignore_reason(gh(payload, event), policy) is not None


def test_comments_by_bots_are_ignored(github_example) -> None:
    payload = github_example("issue_comment.created")
    payload["comment"]["body"] = "/ambient"
    payload["sender"]["type"] = "Bot"
    assert events.ignore_reason(gh(payload, "issue_comment"), IngressPolicy()) == (
        "sent by a bot account"
    )


def test_event_selection_is_configurable_with_wildcards(github_example) -> None:
    delivery = gh(github_example("pull_request.closed"), "pull_request")
    assert (
        events.ignore_reason(
            delivery, IngressPolicy.model_validate({"github": {"events": ["pull_request.*"]}})
        )
        is None
    )
    opened = gh(github_example("pull_request.opened"), "pull_request")
    assert (
        events.ignore_reason(opened, IngressPolicy.model_validate({"github": {"events": []}}))
        is not None
    )


def test_github_needs_json_headers_and_an_object() -> None:
    with pytest.raises(MediaTypeError):
        events.parse("github", {}, b"payload=%7B%7D", FORM)
    with pytest.raises(MalformedError, match="X-GitHub-Event"):
        events.parse("github", {"x-github-delivery": GUID}, b"{}", JSON)
    with pytest.raises(MalformedError, match="X-GitHub-Delivery"):
        events.parse("github", {"x-github-event": "push"}, b"{}", JSON)
    with pytest.raises(MalformedError, match="JSON"):
        events.parse("github", {"x-github-event": "push", "x-github-delivery": GUID}, b"{", JSON)
    with pytest.raises(MalformedError, match="object"):
        events.parse("github", {"x-github-event": "push", "x-github-delivery": GUID}, b"[]", JSON)
    for constant in (b"NaN", b"-Infinity"):
        with pytest.raises(MalformedError, match="not a JSON value"):
            events.parse(
                "github",
                {"x-github-event": "push", "x-github-delivery": GUID},
                b'{"a": ' + constant + b"}",
                JSON,
            )


def test_jira_events() -> None:
    body = {"webhookEvent": "jira:issue_created", "issue": {"key": "OPS-1"}}
    delivery = events.parse(
        "jira", {"x-atlassian-webhook-identifier": "12345"}, json.dumps(body).encode(), JSON
    )
    assert (delivery.event, delivery.delivery_id) == ("jira:issue_created", "12345")
    assert events.ignore_reason(delivery, IngressPolicy()) is None
    deleted = events.Delivery("jira", "jira:issue_deleted", "1", {})
    assert events.ignore_reason(deleted, IngressPolicy()) is not None
    with pytest.raises(MalformedError, match="X-Atlassian-Webhook-Identifier"):
        events.parse("jira", {}, json.dumps(body).encode(), JSON)


def test_slack_events_api() -> None:
    mention = {
        "type": "event_callback",
        "event_id": "Ev0PV52K21",
        "event": {"type": "app_mention", "text": "<@U1> review", "channel": "C1"},
    }
    delivery = events.parse("slack", {}, json.dumps(mention).encode(), JSON)
    assert (delivery.event, delivery.delivery_id) == ("app_mention", "Ev0PV52K21")
    assert events.ignore_reason(delivery, IngressPolicy()) is None
    dm = {
        "type": "event_callback",
        "event_id": "Ev2",
        "event": {"type": "message", "channel_type": "im", "text": "hi"},
    }
    assert events.parse("slack", {}, json.dumps(dm).encode(), JSON).event == "message.im"
    dm["event"]["bot_id"] = "B1"
    bot = events.parse("slack", {}, json.dumps(dm).encode(), JSON)
    assert events.ignore_reason(bot, IngressPolicy()) is not None


def test_slack_url_verification_is_a_challenge() -> None:
    body = json.dumps({"type": "url_verification", "challenge": "3eZbrw1aB"}).encode()
    delivery = events.parse("slack", {}, body, JSON)
    assert (delivery.kind, delivery.challenge) == ("challenge", "3eZbrw1aB")


def test_slack_slash_command_and_interactive_payloads() -> None:
    slash = urlencode(
        {
            "command": "/ambient",
            "text": "fix the build",
            "trigger_id": "13345224609.738474920.8088930838d88f008e0",
        }
    ).encode()
    delivery = events.parse("slack", {}, slash, FORM)
    assert delivery.event == "slash_command"
    assert delivery.payload["text"] == "fix the build"
    interactive = urlencode(
        {"payload": json.dumps({"type": "block_actions", "trigger_id": "1.2.abc", "actions": []})}
    ).encode()
    delivery = events.parse("slack", {}, interactive, FORM)
    assert (delivery.event, delivery.delivery_id) == ("interactive.block_actions", "1.2.abc")
    assert events.ignore_reason(delivery, IngressPolicy()) is None
    with pytest.raises(MalformedError, match="trigger_id"):
        events.parse("slack", {}, urlencode({"command": "/ambient"}).encode(), FORM)
    with pytest.raises(MediaTypeError):
        events.parse("slack", {}, b"x", "text/plain")


def test_session_names_are_deterministic_and_valid() -> None:
    assert events.session_name("github", GUID) == f"github-{GUID}"
    upper = events.session_name("slack", "Ev0PV52K21")
    assert upper == events.session_name("slack", "Ev0PV52K21")
    assert upper != events.session_name("slack", "ev0pv52k21")  # no case folding collisions
    assert upper.startswith("slack-") and len(upper) <= 63 and upper == upper.lower()
    assert len(events.session_name("jira", "x" * 128)) <= 63


def test_the_session_lands_in_the_given_namespace_whatever_the_payload_says(github_example) -> None:
    payload = github_example("pull_request.opened")
    payload["namespace"] = "kube-system"
    payload["metadata"] = {"namespace": "kube-system"}
    delivery = gh(payload, "pull_request")
    defaults = SessionDefaults.model_validate(
        {"framework": {"type": "script", "config": {"command": ["true"]}}, "timeoutSeconds": 60}
    )
    manifest = events.build_session(delivery, "team-a", defaults)
    assert manifest["metadata"]["namespace"] == "team-a"
    session = Session.model_validate(manifest)  # it is a valid Session
    assert session.spec.trigger.event == "pull_request.opened"
    assert session.spec.trigger.delivery_id == GUID
    assert session.spec.framework.type == "script"
    assert session.spec.timeout_seconds == 60
    assert events.is_same_delivery(manifest, delivery)
    # The same body under another delivery id is the same event replayed (finding 5).
    replayed = gh(payload, "pull_request", delivery="another")
    assert events.is_same_delivery(manifest, replayed)
    assert events.is_replayed_body(manifest, replayed)
    assert not events.is_replayed_body(manifest, delivery)  # a plain redelivery
    other = gh({**payload, "number": 99}, "pull_request", delivery="another")
    assert not events.is_same_delivery(manifest, other)
