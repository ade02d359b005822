"""Alertmanager's webhook receiver (payload version 4). Pure.

Alertmanager signs nothing: the ingress key, sent as ``http_config.authorization``
credentials (``Authorization: Bearer <key>``) or in the path, is its only credential.

Alertmanager sends a group's notification again at every ``group_interval`` while it
changes and every ``repeat_interval`` while it does not, and retries a failed send. A
notification carries no id of its own, so the delivery id is a digest of what makes it the
same notification: the group (``groupKey``), its ``status`` and each alert's
``fingerprint`` and ``startsAt``. A repeat maps to the same Session name and creates
nothing (invariant 2); an alert joining the group, a re-fired alert (a new ``startsAt``)
or the group resolving is a new Session, and so is the group's next notification after a
resolved alert has left it (the alerts listed changed; no state is kept to know better).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from . import PayloadError

VERSION = "4"
STATUSES = ("firing", "resolved")


def _text(payload: dict[str, Any], name: str) -> str:
    value = payload.get(name)
    if not isinstance(value, str) or not value:
        raise PayloadError(f"the Alertmanager payload has no {name}")
    return value


def _alert_keys(alerts: Any) -> list[tuple[str, str]]:
    if not isinstance(alerts, list) or not alerts:
        raise PayloadError("the Alertmanager payload has no alerts")
    keys = []
    for i, alert in enumerate(alerts):
        if not isinstance(alert, dict):
            raise PayloadError(f"alerts[{i}] is not an object")
        fingerprint, starts_at = alert.get("fingerprint"), alert.get("startsAt")
        if not isinstance(fingerprint, str) or not fingerprint:
            raise PayloadError(f"alerts[{i}] has no fingerprint")
        if not isinstance(starts_at, str) or not starts_at:
            raise PayloadError(f"alerts[{i}] has no startsAt")
        keys.append((fingerprint, starts_at))
    return sorted(set(keys))  # Alertmanager's order within a group is not part of identity


def notification_id(group_key: str, status: str, alerts: list[tuple[str, str]]) -> str:
    """The delivery id of one notification: lowercase hex SHA-256 over the group key, the
    status and the sorted (fingerprint, startsAt) pairs, in a canonical JSON encoding (so
    no choice of separators in a label value can make two notifications collide)."""
    canonical = json.dumps([group_key, status, alerts], separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canonical.encode("ascii")).hexdigest()


def parse(payload: dict[str, Any]) -> tuple[str, str]:
    """(event, delivery id) of a version 4 notification: the event is its status, firing
    or resolved. Raises PayloadError for another version or a payload missing a field the
    identity needs."""
    version = payload.get("version")
    if version != VERSION:
        raise PayloadError(
            f"Alertmanager webhook payload version {version!r} is not supported: the ingress "
            f"reads version {VERSION!r}, which Alertmanager 0.x webhook receivers send"
        )
    status = _text(payload, "status")
    if status not in STATUSES:
        raise PayloadError(f"status {status!r} is neither firing nor resolved")
    group_key = _text(payload, "groupKey")
    return status, notification_id(group_key, status, _alert_keys(payload.get("alerts")))
