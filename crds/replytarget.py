"""Where an event's outcome is replied to, read from its payload (pure).

The ingress calls ``reply_target`` when it builds a Session and stores the result in
``spec.trigger.replyTo`` (small, so it survives the payload being offloaded to the store);
the operator's replies read only that field (operator/replies). Anything that does not fit
the field's schema is left out rather than guessed: no target, no reply.
"""

from __future__ import annotations

import re
from typing import Any

_REPOSITORY = re.compile(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+")
_SHA = re.compile(r"[0-9a-f]{40}")
_ISSUE_KEY = re.compile(r"[A-Za-z0-9_]+-[0-9]+")
_CHANNEL = re.compile(r"[A-Za-z0-9]+")
_TS = re.compile(r"[0-9]+(\.[0-9]+)?")


def reply_target(source: str, payload: dict[str, Any]) -> dict[str, Any] | None:
    """The ``replyTo`` object (camelCase keys, as stored) for a delivery, or None."""
    if source == "github":
        return _github(payload)
    if source == "jira":
        return _jira(payload)
    if source == "slack":
        return _slack(payload)
    return None


def _get(value: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def _match(pattern: re.Pattern[str], value: Any, longest: int) -> str | None:
    if isinstance(value, str) and len(value) <= longest and pattern.fullmatch(value):
        return value
    return None


def _github(payload: dict[str, Any]) -> dict[str, Any] | None:
    repository = _match(_REPOSITORY, _get(payload, "repository", "full_name"), 256)
    pull = payload.get("pull_request")
    issue = payload.get("issue")
    number = _get(pull, "number") if isinstance(pull, dict) else _get(issue, "number")
    if repository is None or not isinstance(number, int) or isinstance(number, bool):
        return None
    if number < 1:
        return None
    target: dict[str, Any] = {"repository": repository, "number": number}
    sha = _match(_SHA, _get(pull, "head", "sha"), 40)
    if sha is not None:
        target["headSha"] = sha
    return target


def _jira(payload: dict[str, Any]) -> dict[str, Any] | None:
    key = _match(_ISSUE_KEY, _get(payload, "issue", "key"), 64)
    return {"issueKey": key} if key is not None else None


def _slack(payload: dict[str, Any]) -> dict[str, Any] | None:
    event = payload.get("event")
    if isinstance(event, dict):  # Events API: app_mention, message.*
        channel, thread = event.get("channel"), event.get("thread_ts") or event.get("ts")
    elif isinstance(payload.get("command"), str):  # a slash command: the channel only
        channel, thread = payload.get("channel_id"), None
    else:  # interactivity: the message the action was taken on
        channel = _get(payload, "channel", "id")
        thread = _get(payload, "message", "thread_ts") or _get(payload, "message", "ts")
    checked_channel = _match(_CHANNEL, channel, 64)
    if checked_channel is None:
        return None
    target: dict[str, Any] = {"channel": checked_channel}
    ts = _match(_TS, thread, 32)
    if ts is not None:
        target["threadTs"] = ts
    return target
