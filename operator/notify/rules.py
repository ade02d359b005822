"""Which notifications a Session owes, what they say, and how they are signed (pure).

A notification is owed when a Session is in a state a webhook subscribed to and its
history holds no delivery record for that (event, endpoint). The record is appended only
after the endpoint answered 2xx or the retries ran out, so a restarted operator sends
what was never confirmed: delivery is at least once, and every request carries a stable
``X-Ambient-Delivery`` id that receivers deduplicate on.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from ambient.crds import times
from ambient.crds.digests import sha256_hex
from ambient.crds.events import HistoryEvent
from ambient.crds.history import carried, known_ids, operator_entries
from ambient.crds.models import (
    NotificationEvent,
    NotificationPolicy,
    Phase,
    Session,
)

SIGNATURE_HEADER = "X-Ambient-Signature-256"
TIMESTAMP_HEADER = "X-Ambient-Timestamp"
DELIVERY_HEADER = "X-Ambient-Delivery"
EVENT_HEADER = "X-Ambient-Event"

# Slack's incoming webhooks take their own message shape and need no signature: the URL
# itself is the secret.
SLACK_HOSTS = frozenset({"hooks.slack.com", "hooks.slack-gov.com"})

HISTORY_DELIVERED = HistoryEvent.NOTIFICATION_DELIVERED
HISTORY_FAILED = HistoryEvent.NOTIFICATION_FAILED

_REASON_EVENTS = {
    "AwaitingApproval": NotificationEvent.AWAITING_APPROVAL,
    "Queued": NotificationEvent.QUEUED,
}


@dataclass(frozen=True)
class Delivery:
    """One notification owed to one endpoint."""

    event: NotificationEvent
    url: str
    delivery_id: str
    """Stable across retries and restarts: the receiver's deduplication key."""
    history_id: str
    """The history entry that records the outcome."""

    @property
    def slack(self) -> bool:
        return is_slack(self.url)


def is_slack(url: str) -> bool:
    """Slack incoming-webhook URLs get a Slack message instead of the JSON event."""
    return (urlsplit(url).hostname or "").lower() in SLACK_HOSTS


def endpoint_id(url: str) -> str:
    """A short, stable name for an endpoint that does not reveal its URL (Slack's is secret)."""
    return sha256_hex(url)[:12]


def current_event(
    session: Session, now: datetime, queued_after: timedelta
) -> NotificationEvent | None:
    """The event the Session's present state stands for, if any.

    ``session.queued`` fires only once a Session has waited ``queued_after``: a queue that
    drains in seconds is not news.
    """
    status = session.status
    if status.phase == Phase.COMPLETED:
        return NotificationEvent.COMPLETED
    if status.phase == Phase.FAILED:
        return NotificationEvent.FAILED
    event = _REASON_EVENTS.get(status.reason or "")
    if event is NotificationEvent.QUEUED:
        since = _waiting_since(session, HistoryEvent.QUEUED)
        if since is None or now - since < queued_after:
            return None
    return event


def _waiting_since(session: Session, reason: str) -> datetime | None:
    """When the Session entered ``reason``: the newest history entry that names it."""
    for entry in reversed(operator_entries(session.status.history)):
        if entry.event == reason or entry.data.get("reason") == reason:
            return times.parse_or_none(entry.timestamp)
    for archived in reversed(carried(session.status.history)):
        if archived.event == reason:
            return times.parse_or_none(archived.timestamp)
    return times.parse_or_none(session.metadata.creation_timestamp)


def owed(
    session: Session,
    policy: NotificationPolicy,
    now: datetime,
    queued_after: timedelta = timedelta(minutes=10),
) -> list[Delivery]:
    """Deliveries the Session's state calls for that its history does not yet record."""
    event = current_event(session, now, queued_after)
    if event is None:
        return []
    recorded = known_ids(session.status.history)
    deliveries = []
    for hook in policy.webhooks:
        if event not in hook.events:
            continue
        history_id = f"notify/{event.value}/{endpoint_id(hook.url)}"
        if history_id in recorded:
            continue
        delivery_id = f"{session.metadata.uid or session.metadata.name}/{event.value}"
        deliveries.append(
            Delivery(event, hook.url, f"{delivery_id}/{endpoint_id(hook.url)}", history_id)
        )
    return deliveries


def payload(session: Session, event: NotificationEvent, now: datetime) -> dict[str, Any]:
    """The JSON event: enough to act on without reading the Session, and no payload data.

    The trigger payload is left out on purpose: it can be large and can hold what the
    sender considered private; receivers that need it read the Session.
    """
    status, spec, meta = session.status, session.spec, session.metadata
    return {
        "event": event.value,
        "timestamp": now.isoformat(),
        "namespace": meta.namespace,
        "session": meta.name,
        "uid": meta.uid,
        "phase": status.phase.value,
        "reason": status.reason,
        "message": status.message,
        "framework": {"type": spec.framework.type, "version": spec.framework.version},
        "trigger": {"source": spec.trigger.source.value, "event": spec.trigger.event},
        "usage": status.usage.model_dump(by_alias=True),
        "startTime": status.start_time,
        "completionTime": status.completion_time,
        "artifacts": len(status.artifacts.generated),
    }


_SLACK_ICONS = {
    NotificationEvent.COMPLETED: ":white_check_mark:",
    NotificationEvent.FAILED: ":x:",
    NotificationEvent.AWAITING_APPROVAL: ":raised_hand:",
    NotificationEvent.QUEUED: ":hourglass_flowing_sand:",
}


def slack_message(event_body: dict[str, Any]) -> dict[str, Any]:
    """A readable Slack message for the same event (text plus a fields block)."""
    event = NotificationEvent(event_body["event"])
    title = (
        f"{_SLACK_ICONS[event]} Session *{event_body['namespace']}/{event_body['session']}* "
        f"{event.value.removeprefix('session.').replace('_', ' ')}"
    )
    detail = event_body.get("reason") or event_body["phase"]
    if event_body.get("message"):
        detail = f"{detail}: {event_body['message']}"
    fields = [
        f"*Framework*\n{event_body['framework']['type']}",
        f"*Trigger*\n{event_body['trigger']['source']} {event_body['trigger']['event']}",
        f"*Cost*\n{event_body['usage'].get('cost', '0')}",
    ]
    return {
        "text": f"{title} ({detail})",
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": f"{title}\n{detail[:2900]}"}},
            {"type": "section", "fields": [{"type": "mrkdwn", "text": f} for f in fields]},
        ],
    }


def encode(body: dict[str, Any]) -> bytes:
    """Compact, key-sorted JSON: the exact bytes that are signed and sent."""
    return json.dumps(body, separators=(",", ":"), sort_keys=True).encode()


def signature(secret: bytes, timestamp: int, body: bytes) -> str:
    """``sha256=<hex>`` of HMAC-SHA256 over ``<timestamp>.<body>``.

    The timestamp is inside the MAC so a captured request cannot be replayed later with a
    fresh timestamp header; receivers should refuse timestamps more than 5 minutes off.
    """
    mac = hmac.new(secret, f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"sha256={mac.hexdigest()}"


def verify(secret: bytes, timestamp: int, body: bytes, header: str) -> bool:
    """What a receiver does (and the tests do): constant-time comparison."""
    return hmac.compare_digest(signature(secret, timestamp, body), header)


def headers(
    delivery: Delivery, body: bytes, timestamp: int, secret: bytes | None
) -> dict[str, str]:
    """Request headers; the signature only when the namespace configured a secret."""
    result = {
        "Content-Type": "application/json",
        DELIVERY_HEADER: delivery.delivery_id,
        EVENT_HEADER: delivery.event.value,
        TIMESTAMP_HEADER: str(timestamp),
    }
    if secret and not delivery.slack:
        result[SIGNATURE_HEADER] = signature(secret, timestamp, body)
    return result


def backoff(attempt: int, base: float = 1.0, cap: float = 60.0) -> float:
    """Seconds to wait before retry ``attempt`` (1-based): exponential, capped."""
    if attempt < 1:
        raise ValueError(f"attempt must be 1 or more, got {attempt}")
    return float(min(cap, base * 2 ** (attempt - 1)))


def retryable(status: int | None) -> bool:
    """Connection errors, timeouts (None), 408, 429 and 5xx are worth retrying; 4xx is not."""
    return status is None or status in (408, 429) or status >= 500
