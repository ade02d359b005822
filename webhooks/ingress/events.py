"""Events to Sessions. Pure: parse a delivery, decide whether it starts a Session, build it.

The namespace is an argument from the key index, never read from the payload (invariant 1);
the Session name is deterministic (invariant 2): for Slack it comes from the event id,
which Slack signs with a timestamp; for GitHub and Jira, whose signatures cover the body
only, it comes from the body's SHA-256, so a captured body replayed under a new delivery
id maps to the Session the first delivery made (finding 5 of issue 17).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import parse_qs

from ambient.crds.models import (
    API_VERSION,
    GitHubIngressPolicy,
    IngressPolicy,
    IngressSourcePolicy,
    SessionDefaults,
)
from ambient.crds.naming import CREATED_BY_INGRESS, LABEL_CREATED_BY, LABEL_TRIGGER_SOURCE
from ambient.crds.replytarget import reply_target

from .sources import PayloadError, alertmanager, generic

SOURCES = ("github", "jira", "slack", "alertmanager", "generic")
BODY_NAMED = frozenset({"github", "jira"})
"""Sources whose Session name is the body's digest: their signature covers only the body,
and their delivery-id header is not signed (a replay can put a new one)."""
MAX_NAME = 63  # the operator derives Job names (<= 63) from the Session name
MAX_DELIVERY_ID = 128  # spec.trigger.deliveryId's schema limit

DEFAULT_EVENTS: dict[str, tuple[str, ...]] = {
    "github": (
        "pull_request.opened",
        "pull_request.synchronize",
        "pull_request.reopened",
        "issue_comment.created",
        "pull_request_review_comment.created",
        "issues.opened",
        "issues.labeled",
    ),
    "jira": ("jira:issue_created", "jira:issue_updated", "comment_created"),
    "slack": ("app_mention", "message.im", "slash_command", "interactive.*"),
    "alertmanager": ("firing",),
    # A generic sender is set up on purpose (its own key and signing secret): every event.
    "generic": ("*",),
}
COMMENT_EVENTS = ("issue_comment", "pull_request_review_comment")

JSON = "application/json"
FORM = "application/x-www-form-urlencoded"


class MalformedError(ValueError):
    """The body or a required header cannot be understood (422)."""


class MediaTypeError(ValueError):
    """The content type is not one this source sends (415)."""


@dataclass(frozen=True)
class Delivery:
    """One parsed delivery. kind says what to answer: a Session, a ping or a challenge."""

    source: str
    event: str
    delivery_id: str
    payload: dict[str, Any] = field(repr=False)
    kind: Literal["session", "ping", "challenge"] = "session"
    challenge: str = ""
    body_sha256: str = ""
    """The SHA-256 of the exact body (GitHub and Jira: it names the Session)."""


def media_type(content_type: str | None) -> str:
    """The bare media type of a Content-Type header, lower case."""
    return (content_type or "").split(";", 1)[0].strip().lower()


def _not_json(constant: str) -> Any:
    # Python's parser takes NaN and Infinity, which JSON (and the API server) does not.
    raise MalformedError(f"the body is not valid JSON: {constant} is not a JSON value")


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        value = json.loads(body, parse_constant=_not_json)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MalformedError(f"the body is not valid JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise MalformedError("the body must be a JSON object")
    return value


def _header(headers: Mapping[str, str], name: str) -> str:
    value = (headers.get(name.lower()) or "").strip()
    if not value:
        raise MalformedError(f"missing the {name} header that every delivery carries")
    return value


def _delivery_id(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise MalformedError(f"missing {what}, needed to process the delivery exactly once")
    if len(value) > MAX_DELIVERY_ID:
        raise MalformedError(f"{what} is longer than {MAX_DELIVERY_ID} characters")
    return value.strip()


def parse(
    source: str, headers: Mapping[str, str], body: bytes, content_type: str | None
) -> Delivery:
    """Parse a verified request body. Raises MediaTypeError or MalformedError."""
    mtype = media_type(content_type)
    if source == "github":
        if mtype != JSON:
            raise MediaTypeError(
                "GitHub deliveries must be application/json: set 'Content type' to "
                "application/json in the webhook settings"
            )
        payload = _json_object(body)
        name = _header(headers, "X-GitHub-Event")
        delivery = _delivery_id(headers.get("x-github-delivery"), "the X-GitHub-Delivery header")
        action = payload.get("action")
        event = f"{name}.{action}" if isinstance(action, str) and action else name
        kind: Literal["session", "ping"] = "ping" if name == "ping" else "session"
        return Delivery("github", event[:128], delivery, payload, kind, body_sha256=_digest(body))
    if source == "jira":
        if mtype != JSON:
            raise MediaTypeError("Jira deliveries must be application/json")
        payload = _json_object(body)
        jira_event = payload.get("webhookEvent")
        if not isinstance(jira_event, str) or not jira_event:
            raise MalformedError("the Jira payload has no webhookEvent")
        delivery = _delivery_id(
            headers.get("x-atlassian-webhook-identifier"),
            "the X-Atlassian-Webhook-Identifier header",
        )
        return Delivery("jira", jira_event[:128], delivery, payload, body_sha256=_digest(body))
    if source == "slack":
        if mtype == JSON:
            return _slack_event(_json_object(body))
        if mtype == FORM:
            return _slack_form(body)
        raise MediaTypeError(
            "Slack requests must be application/json (Events API) or "
            "application/x-www-form-urlencoded (slash commands, interactivity)"
        )
    if source in ("alertmanager", "generic"):
        return _json_source(source, headers, body, mtype)
    raise MalformedError(f"unknown source {source!r}; use one of {', '.join(SOURCES)}")


def _json_source(source: str, headers: Mapping[str, str], body: bytes, mtype: str) -> Delivery:
    """Alertmanager and generic senders: JSON, parsed by their module in sources/."""
    if mtype != JSON:
        raise MediaTypeError(f"{source} deliveries must be application/json")
    payload = _json_object(body)
    try:
        if source == "alertmanager":
            event, delivery = alertmanager.parse(payload)
        else:
            event, delivery = generic.parse(headers, payload)
    except PayloadError as exc:
        raise MalformedError(str(exc)) from exc
    what = "the webhook-id header" if source == "generic" else "the notification's digest"
    return Delivery(source, event, _delivery_id(delivery, what), payload)


def _digest(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def _slack_event(payload: dict[str, Any]) -> Delivery:
    kind = payload.get("type")
    if kind == "url_verification":
        challenge = payload.get("challenge")
        if not isinstance(challenge, str):
            raise MalformedError("url_verification without a challenge")
        return Delivery("slack", "url_verification", "-", payload, "challenge", challenge)
    if kind != "event_callback":
        raise MalformedError(f"unsupported Slack payload type {kind!r}")
    inner = payload.get("event")
    if not isinstance(inner, dict) or not isinstance(inner.get("type"), str):
        raise MalformedError("event_callback without an event type")
    event = inner["type"]
    if event == "message":
        event = f"message.{inner.get('channel_type') or 'channel'}"
    return Delivery("slack", event, _delivery_id(payload.get("event_id"), "event_id"), payload)


def _slack_form(body: bytes) -> Delivery:
    try:
        form = {k: v[0] for k, v in parse_qs(body.decode(), strict_parsing=False).items()}
    except UnicodeDecodeError as exc:
        raise MalformedError("the form body is not UTF-8") from exc
    if "payload" in form:  # interactivity: one form field holding JSON
        payload = _json_object(form["payload"].encode())
        kind = payload.get("type")
        if not isinstance(kind, str) or not kind:
            raise MalformedError("the interactive payload has no type")
        return Delivery(
            "slack",
            f"interactive.{kind}",
            _delivery_id(payload.get("trigger_id"), "trigger_id"),
            payload,
        )
    if "command" not in form:
        raise MalformedError("a form body must be a slash command (command=...) or payload=...")
    return Delivery(
        "slack", "slash_command", _delivery_id(form.get("trigger_id"), "trigger_id"), form
    )


def _matches(event: str, patterns: tuple[str, ...] | list[str]) -> bool:
    for pattern in patterns:
        if pattern in ("*", event):
            return True
        if pattern.endswith(".*") and event.startswith(pattern[:-1]):
            return True
    return False


def _addresses_bot(text: str, policy: GitHubIngressPolicy) -> bool:
    stripped = text.strip()
    if stripped.startswith(policy.command):
        return True
    if policy.bot_name:
        return (
            re.search(rf"(?<![\w-])@{re.escape(policy.bot_name)}(?![\w-])", text, re.I) is not None
        )
    return False


def ignore_reason(delivery: Delivery, policy: IngressPolicy) -> str | None:
    """Why this delivery starts no Session, or None when it starts one."""
    source_policy: IngressSourcePolicy = getattr(policy, delivery.source)
    events = (
        source_policy.events
        if source_policy.events is not None
        else DEFAULT_EVENTS[delivery.source]
    )
    if not _matches(delivery.event, events):
        return f"event {delivery.event} is not selected in spec.ingress.{delivery.source}.events"
    payload = delivery.payload
    if delivery.source == "github":
        sender = payload.get("sender")
        if isinstance(sender, dict) and sender.get("type") == "Bot":
            return "sent by a bot account"
        name = delivery.event.split(".", 1)[0]
        if name in COMMENT_EVENTS:
            comment = payload.get("comment")
            text = comment.get("body") if isinstance(comment, dict) else None
            if not isinstance(text, str) or not _addresses_bot(text, policy.github):
                who = f"mention @{policy.github.bot_name} or " if policy.github.bot_name else ""
                return f"the comment does not {who}start with {policy.github.command}"
    if delivery.source == "slack":
        inner = payload.get("event")
        if isinstance(inner, dict) and (inner.get("bot_id") or inner.get("subtype")):
            return "a bot message or a message edit, not a request"
    return None


def session_name(source: str, delivery_id: str) -> str:
    """<source>-<id> when the id is a short lowercase DNS label, else <source>-<sha256[:40]>."""
    candidate = f"{source}-{delivery_id}"
    if len(candidate) <= MAX_NAME and re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", delivery_id):
        return candidate
    return f"{source}-{hashlib.sha256(delivery_id.encode()).hexdigest()[:40]}"


def body_session_name(source: str, body_sha256: str) -> str:
    """<source>-<sha256[:40]>: the Session a GitHub or Jira body maps to, whatever delivery
    id it comes with."""
    return f"{source}-{body_sha256[:40]}"


def name_of(delivery: Delivery) -> str:
    """The Session name a delivery maps to: by body for GitHub and Jira, else by id."""
    if delivery.source in BODY_NAMED and delivery.body_sha256:
        return body_session_name(delivery.source, delivery.body_sha256)
    return session_name(delivery.source, delivery.delivery_id)


def build_session(delivery: Delivery, namespace: str, defaults: SessionDefaults) -> dict[str, Any]:
    """The Session manifest for a delivery, in the key's namespace."""
    return {
        "apiVersion": API_VERSION,
        "kind": "Session",
        "metadata": {
            "name": name_of(delivery),
            "namespace": namespace,
            "labels": {LABEL_TRIGGER_SOURCE: delivery.source, LABEL_CREATED_BY: CREATED_BY_INGRESS},
        },
        "spec": {
            "trigger": {
                "source": delivery.source,
                "event": delivery.event,
                "payload": delivery.payload,
                "deliveryId": delivery.delivery_id,
                **_reply_to(delivery),
            },
            "framework": defaults.framework.model_dump(mode="json"),
            "policy": defaults.policy.model_dump(mode="json"),
            **(
                {"timeoutSeconds": defaults.timeout_seconds}
                if defaults.timeout_seconds is not None
                else {}
            ),
        },
    }


def _reply_to(delivery: Delivery) -> dict[str, Any]:
    """Where the outcome is replied to (operator/replies), when the event names a place."""
    target = reply_target(delivery.source, delivery.payload)
    return {"replyTo": target} if target else {}


def with_payload_ref(manifest: dict[str, Any], location: str, size: int, sha256: str) -> None:
    """Point the manifest's trigger at the stored payload instead of carrying it."""
    trigger = manifest["spec"]["trigger"]
    trigger["payload"] = {}
    trigger["payloadRef"] = {"location": location, "size": size, "sha256": sha256}


def is_same_delivery(existing: Mapping[str, Any], delivery: Delivery) -> bool:
    """Ownership check after 409: the stored Session is this very delivery's, or (GitHub,
    Jira) this very body's under another delivery id (``is_replayed_body`` says which)."""
    trigger = existing.get("spec", {}).get("trigger", {})
    if trigger.get("source") != delivery.source:
        return False
    return trigger.get("deliveryId") == delivery.delivery_id or is_replayed_body(existing, delivery)


def is_replayed_body(existing: Mapping[str, Any], delivery: Delivery) -> bool:
    """The stored Session carries this delivery's very body under another delivery id: a
    sender's duplicate hook or a captured delivery replayed. Either way it starts nothing
    new. The body is compared by digest when it was stored aside, else as parsed JSON."""
    if delivery.source not in BODY_NAMED or not delivery.body_sha256:
        return False
    trigger = existing.get("spec", {}).get("trigger", {})
    if trigger.get("deliveryId") == delivery.delivery_id:
        return False
    ref = trigger.get("payloadRef")
    if isinstance(ref, Mapping) and ref.get("sha256"):
        return bool(ref.get("sha256") == delivery.body_sha256)
    return bool(trigger.get("payload") == delivery.payload)
