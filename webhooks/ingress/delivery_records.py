"""The delivery log, pure parts: audit records of deliveries and the stored requests.

Every delivery whose key resolved to a namespace is an audit record (action
``WebhookDelivery``) exported with the operator's batching exporter to
``<prefix>/audit/<namespace>/<day>/``. A refused or failed delivery whose body was read
also keeps its raw request (the body and only the headers needed to parse and verify it
again, never the key or a secret) create-only at a deterministic key,
``<prefix>/deliveries/<namespace>/<day>/<source>-<digest>.json``, so an admin can replay
it after fixing the cause. Retention deletes those after ``spec.retention.deliveries``.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

from ambient.common.audit.records import record as audit_record

from . import events

ACTION_DELIVERY = "WebhookDelivery"
ACTION_REPLAY = "DeliveryReplayed"

# What a replay needs to parse and verify a request again. Authorization (a key) and
# cookies are never kept; signatures are HMAC outputs, not secrets.
KEPT_HEADERS = frozenset(
    {
        "content-type",
        "user-agent",
        "x-github-event",
        "x-github-delivery",
        "x-github-hook-id",
        "x-hub-signature-256",
        "x-hub-signature",
        "x-atlassian-webhook-identifier",
        "x-slack-request-timestamp",
        "x-slack-signature",
        "x-slack-retry-num",
        "x-slack-retry-reason",
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
    }
)
# Outcomes that changed nothing and need no replay: the Session exists, or there is none
# to make. "ignored" is kept only when the ingress is told to (a policy change may select it).
SETTLED = frozenset({"created", "duplicate", "ping", "challenge"})
# Refusals whose body nobody vouched for: whoever holds a key but not the signing secret
# could otherwise make the store keep up to 25 MiB per request (finding 10 of issue 17).
# They are kept only up to the in-Session size (enough to replay an ordinary delivery after
# the admin fixes the secret), within the namespace's keep budget; the record is always
# exported, and the sender can redeliver a larger one once the secret is right.
UNVERIFIED = frozenset({"InvalidSignature", "SigningSecretMissing"})


def kept_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """The allow-listed headers of a request, lower-cased."""
    return {k.lower(): v for k, v in headers.items() if k.lower() in KEPT_HEADERS}


def peek_delivery_id(source: str, headers: Mapping[str, str]) -> str:
    """The sender's delivery id from the headers alone (GitHub, Jira), for refusals that
    happen before the body is parsed. Slack's ids are inside the body: empty."""
    name = {
        "github": "x-github-delivery",
        "jira": "x-atlassian-webhook-identifier",
        "generic": "webhook-id",
    }.get(source)
    return (headers.get(name) or "").strip()[:128] if name else ""


def peek_event(source: str, headers: Mapping[str, str]) -> str:
    return (headers.get("x-github-event") or "").strip()[:128] if source == "github" else ""


def session_of(source: str, delivery_id: str, outcome: str, body: bytes | None = None) -> str:
    """The Session name a delivery maps to (events.name_of), if it maps to one: by the
    body's digest for GitHub and Jira, else by the delivery id."""
    if not delivery_id or outcome in ("ping", "challenge") or source not in events.SOURCES:
        return ""
    if source in events.BODY_NAMED:
        if body is None:
            return ""
        return events.body_session_name(source, hashlib.sha256(body).hexdigest())
    return events.session_name(source, delivery_id)


def should_keep(
    outcome: str,
    *,
    body_read: bool,
    namespace: str,
    keep_ignored: bool,
    reason: str = "",
    size: int = 0,
    unverified_limit: int | None = None,
) -> bool:
    """Whether a delivery's raw request is stored for replay: never a settled one, and one
    whose signature did not hold (``reason`` is the refusal's code) only when its ``size``
    is within ``unverified_limit``."""
    if not namespace or not body_read or outcome in SETTLED:
        return False
    if reason in UNVERIFIED and unverified_limit is not None and size > unverified_limit:
        return False
    return keep_ignored if outcome == "ignored" else True


class StoredRequest(BaseModel):
    """A refused or failed delivery as received, enough to run it through the pipeline
    again."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")

    source: str
    namespace: str
    received_at: str
    trace_id: str
    delivery_id: str = ""
    headers: dict[str, str]
    body: str
    """Base64 of the exact bytes received (they are what the signature covers)."""

    @classmethod
    def of(
        cls,
        *,
        source: str,
        namespace: str,
        received_at: datetime,
        trace_id: str,
        delivery_id: str,
        headers: Mapping[str, str],
        body: bytes,
    ) -> StoredRequest:
        return cls(
            source=source,
            namespace=namespace,
            received_at=received_at.isoformat(),
            trace_id=trace_id,
            delivery_id=delivery_id,
            headers=kept_headers(headers),
            body=base64.b64encode(body).decode(),
        )

    def raw_body(self) -> bytes:
        return base64.b64decode(self.body)

    def encode(self) -> bytes:
        return self.model_dump_json(by_alias=True).encode()

    @classmethod
    def decode(cls, data: bytes) -> StoredRequest:
        return cls.model_validate_json(data)


def delivery_record(
    *,
    timestamp: datetime,
    namespace: str,
    source: str,
    event: str,
    delivery_id: str,
    session: str,
    outcome: str,
    reason: str,
    status: int,
    trace_id: str,
    request_key: str | None,
) -> dict[str, Any]:
    """One delivery as an audit record with the spec's AuditLog fields."""
    details: dict[str, Any] = {
        "source": source,
        "event": event,
        "deliveryId": delivery_id,
        "reason": reason,
        "status": status,
    }
    if request_key:
        details["requestKey"] = request_key
    return audit_record(
        namespace=namespace,
        session_id="",
        actor=f"webhook:{source}",
        action=ACTION_DELIVERY,
        resource=f"sessions/{session}" if session else f"deliveries/{delivery_id or trace_id}",
        outcome=outcome,
        details=details,
        trace_id=trace_id,
        timestamp=timestamp,
    )


def replay_record(
    *,
    timestamp: datetime,
    original: Mapping[str, Any],
    actor: str,
    session: str,
    outcome: str,
    reason: str,
    trace_id: str,
) -> dict[str, Any]:
    """Who replayed which delivery, and what came of it."""
    details = original.get("details") or {}
    return audit_record(
        namespace=str(original["namespace"]),
        session_id="",
        actor=actor,
        action=ACTION_REPLAY,
        resource=f"sessions/{session}" if session else str(original.get("resource", "")),
        outcome=outcome,
        details={
            "source": details.get("source", ""),
            "event": details.get("event", ""),
            "deliveryId": details.get("deliveryId", ""),
            "reason": reason,
            "replayOf": original.get("traceId", ""),
            "requestKey": details.get("requestKey", ""),
        },
        trace_id=trace_id,
        timestamp=timestamp,
    )


@dataclass(frozen=True)
class Row:
    """One line of ``deliveries list``."""

    timestamp: str
    id: str
    action: str
    actor: str
    source: str
    event: str
    delivery_id: str
    session: str
    outcome: str
    reason: str
    request_key: str

    @property
    def replayable(self) -> bool:
        return self.action == ACTION_DELIVERY and bool(self.request_key)


def rows(
    records: Iterable[Mapping[str, Any]],
    *,
    outcome: str | None = None,
    source: str | None = None,
) -> list[Row]:
    """The delivery and replay records among ``records``, optionally filtered."""
    out = []
    for r in records:
        if r.get("action") not in (ACTION_DELIVERY, ACTION_REPLAY):
            continue
        d = r.get("details") or {}
        resource = str(r.get("resource", ""))
        row = Row(
            timestamp=str(r.get("timestamp", "")),
            id=str(r.get("traceId", "")),
            action=str(r["action"]),
            actor=str(r.get("actor", "")),
            source=str(d.get("source", "")),
            event=str(d.get("event", "")),
            delivery_id=str(d.get("deliveryId", "")),
            session=resource.removeprefix("sessions/") if resource.startswith("sessions/") else "",
            outcome=str(r.get("outcome", "")),
            reason=str(d.get("reason", "")),
            request_key=str(d.get("requestKey", "")),
        )
        if outcome is not None and row.outcome != outcome:
            continue
        if source is not None and row.source != source:
            continue
        out.append(row)
    return out


class DeliveryNotFoundError(LookupError):
    """No delivery, or more than one, answers to an id."""


def find(found: Iterable[Row], ident: str) -> Row:
    """The delivery an admin names by its id (the trace id, or a unique prefix of at least
    8 characters) or by the sender's delivery id (then the latest replayable one)."""
    deliveries = [r for r in found if r.action == ACTION_DELIVERY]
    by_trace = [r for r in deliveries if len(ident) >= 8 and r.id.startswith(ident)]
    if len(by_trace) > 1:
        raise DeliveryNotFoundError(f"{ident!r} is ambiguous: {', '.join(r.id for r in by_trace)}")
    if by_trace:
        return by_trace[0]
    by_sender = [r for r in deliveries if r.delivery_id == ident]
    if not by_sender:
        raise DeliveryNotFoundError(f"no delivery {ident!r} in this namespace and time range")
    replayable = [r for r in by_sender if r.replayable]
    return max(replayable or by_sender, key=lambda r: r.timestamp)


def table(found: Iterable[Row]) -> str:
    lines = [
        f"{'TIMESTAMP':32} {'ID':32} {'SOURCE':6} {'EVENT':28} {'DELIVERY':38} "
        f"{'OUTCOME':18} {'REPLAY':6} REASON"
    ]
    for r in found:
        outcome = r.outcome if r.action == ACTION_DELIVERY else f"replayed:{r.outcome}"
        lines.append(
            f"{r.timestamp:32} {r.id:32} {r.source or '-':6} {r.event or '-':28} "
            f"{r.delivery_id or '-':38} {outcome:18} {'yes' if r.replayable else '-':6} "
            f"{r.reason or '-'}"
        )
    return "\n".join(lines)
