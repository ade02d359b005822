"""Audit records (pure): the spec's AuditLog fields, built the same way by every writer."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any


def record(
    *,
    namespace: str,
    session_id: str,
    actor: str,
    action: str,
    resource: str,
    outcome: str,
    details: dict[str, Any],
    trace_id: str,
    timestamp: datetime | None = None,
) -> dict[str, Any]:
    """Build one audit record (pure), with exactly the spec's fields."""
    return {
        "timestamp": (timestamp or datetime.now(UTC)).isoformat(),
        "namespace": namespace,
        "sessionId": session_id,
        "actor": actor,
        "action": action,
        "resource": resource,
        "outcome": outcome,
        "details": details,
        "traceId": trace_id,
    }
