"""Audit export and the audit CLI against a real S3-compatible server (moto's server mode).

The same boto3 calls go to AWS in production; only the endpoint differs.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ambient.common.audit.cli import run
from ambient.common.audit.export import AuditExporter
from ambient.common.audit.records import record as audit_record
from ambient.common.store.s3 import AlreadyExistsError, S3Store

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _record(session: str, minutes: int, action: str) -> dict[str, object]:
    return audit_record(
        namespace="team-alpha",
        session_id=f"uid-{session}",
        actor="ambient-operator",
        action=action,
        resource=f"sessions/{session}",
        outcome="success",
        details={"n": str(minutes)},
        trace_id="t-1",
        timestamp=T0 + timedelta(minutes=minutes),
    )


def test_objects_are_create_only(s3_store: S3Store) -> None:
    s3_store.put_new("audit/x.jsonl", b"one\n")
    with pytest.raises(AlreadyExistsError):
        s3_store.put_new("audit/x.jsonl", b"two\n")
    assert s3_store.get("audit/x.jsonl") == b"one\n"


def test_exported_trail_reads_back_through_the_cli(s3_store: S3Store) -> None:
    exporter = AuditExporter(s3_store, prefix="archive")
    for minutes, (session, action) in enumerate(
        [("s1", "Created"), ("s2", "Created"), ("s1", "WorkloadCreated"), ("s1", "Completed")]
    ):
        exporter.add(_record(session, minutes, action))
    assert len(exporter.flush()) == 1
    exporter.add(_record("s1", 30, "NotificationDelivered"))
    exporter.flush()
    assert len(s3_store.list_keys("archive/audit/team-alpha/2026/03/01/")) == 2

    now = T0 + timedelta(days=1)
    table = run(["session", "team-alpha", "s1"], s3_store, "archive", now)
    lines = table.splitlines()
    assert lines[0].startswith("TIMESTAMP")
    assert [line.split()[3] for line in lines[1:]] == [
        "Created",
        "WorkloadCreated",
        "Completed",
        "NotificationDelivered",
    ]
    window = run(
        [
            "namespace",
            "team-alpha",
            "--since",
            "2026-03-01T12:01:00Z",
            "--until",
            "2026-03-01T12:03:00Z",
            "--json",
        ],
        s3_store,
        "archive",
        now,
    )
    assert [line.count('"action"') for line in window.splitlines()] == [1, 1]


def test_the_cli_refuses_an_empty_range(s3_store: S3Store) -> None:
    with pytest.raises(SystemExit, match="must be before"):
        run(
            ["namespace", "team-alpha", "--since", "2026-03-02", "--until", "2026-03-01"],
            s3_store,
            "",
            T0,
        )
