"""Audit records carry exactly the spec's AuditLog fields."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from ambient.common.audit.records import record as audit_record

FIELDS = {
    "timestamp",
    "namespace",
    "sessionId",
    "actor",
    "action",
    "resource",
    "outcome",
    "details",
    "traceId",
}


def test_record_has_exactly_the_spec_fields() -> None:
    moment = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
    entry = audit_record(
        namespace="team-alpha",
        session_id="5b1c2f4e",
        actor="ambient-operator",
        action="job.create",
        resource="jobs/review-pr-42-a1",
        outcome="success",
        details={"image": "ambient/runner-script:0.1.0"},
        trace_id="trace-1",
        timestamp=moment,
    )
    assert set(entry) == FIELDS
    assert entry["timestamp"] == "2026-03-01T12:00:00+00:00"
    assert entry["sessionId"] == "5b1c2f4e"
    assert entry["traceId"] == "trace-1"
    assert entry["details"] == {"image": "ambient/runner-script:0.1.0"}
    json.dumps(entry)  # serialisable as a JSON line


def test_record_defaults_to_now_in_utc() -> None:
    before = datetime.now(UTC)
    entry = audit_record(
        namespace="n",
        session_id="s",
        actor="a",
        action="x",
        resource="r",
        outcome="o",
        details={},
        trace_id="t",
    )
    stamp = datetime.fromisoformat(entry["timestamp"])
    assert stamp.tzinfo is not None
    assert before <= stamp <= datetime.now(UTC)
