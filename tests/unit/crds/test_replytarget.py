"""Where a reply goes, read from real payloads (GitHub's published examples) and the
documented Jira and Slack shapes; what does not fit the schema gives no target."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ambient.crds.models import ReplyTarget
from ambient.crds.replytarget import reply_target

GITHUB = Path(__file__).parents[2] / "fixtures" / "github"


def _github(name: str) -> dict[str, Any]:
    payload: dict[str, Any] = json.loads((GITHUB / f"{name}.json").read_text())
    return payload


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (
            "pull_request.opened",
            {
                "repository": "Codertocat/Hello-World",
                "number": 2,
                "headSha": "ec26c3e57ca3a959ca5aad62de7213c562f8c821",
            },
        ),
        (
            "pull_request_review_comment.created",
            {
                "repository": "Codertocat/Hello-World",
                "number": 2,
                "headSha": "ec26c3e57ca3a959ca5aad62de7213c562f8c821",
            },
        ),
        ("issue_comment.created", {"repository": "Codertocat/Hello-World", "number": 1}),
        ("issues.opened", {"repository": "Codertocat/Hello-World", "number": 1}),
        ("push", None),  # nothing to comment on
    ],
)
def test_github_examples(name: str, expected: dict[str, Any] | None) -> None:
    target = reply_target("github", _github(name))
    assert target == expected
    if target is not None:
        ReplyTarget.model_validate(target)  # what the ingress stores passes the schema


def test_jira_issue_key() -> None:
    payload = {"webhookEvent": "jira:issue_created", "issue": {"id": "10002", "key": "OPS-42"}}
    assert reply_target("jira", payload) == {"issueKey": "OPS-42"}
    assert reply_target("jira", {"issue": {"key": "no key here"}}) is None


def test_slack_mention_replies_in_its_thread_or_starts_one() -> None:
    mention = {
        "type": "event_callback",
        "event": {"type": "app_mention", "channel": "C0LAN2Q65", "ts": "1515449522.000016"},
    }
    assert reply_target("slack", mention) == {
        "channel": "C0LAN2Q65",
        "threadTs": "1515449522.000016",
    }
    mention["event"]["thread_ts"] = "1515449000.000001"
    assert reply_target("slack", mention)["threadTs"] == "1515449000.000001"  # type: ignore[index]


def test_slack_slash_command_and_interaction() -> None:
    assert reply_target("slack", {"command": "/ambient", "channel_id": "C2147483705"}) == {
        "channel": "C2147483705"
    }
    action = {"type": "block_actions", "channel": {"id": "C1"}, "message": {"ts": "17.5"}}
    assert reply_target("slack", action) == {"channel": "C1", "threadTs": "17.5"}


@pytest.mark.parametrize(
    ("source", "payload"),
    [
        ("github", {"repository": {"full_name": "a/b; rm"}, "issue": {"number": 1}}),
        ("github", {"repository": {"full_name": "a/b"}, "issue": {"number": True}}),
        ("github", {"repository": {"full_name": "a/b"}, "issue": {"number": 0}}),
        ("github", {"repository": "a/b", "issue": {"number": 1}}),
        ("slack", {"event": {"channel": "../../x", "ts": "1.2"}}),
        ("alertmanager", {"groupKey": "x"}),
    ],
)
def test_what_does_not_fit_gives_no_target(source: str, payload: dict[str, Any]) -> None:
    assert reply_target(source, payload) is None
