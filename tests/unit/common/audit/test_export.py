"""Audit export: batches per namespace and day, append-only keys, reading a trail back."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from ambient.common.audit.export import AuditExporter, read_trail
from ambient.common.audit.records import record as audit_record

T0 = datetime(2026, 3, 1, 23, 59, 0, tzinfo=UTC)


def _record(
    namespace: str, minutes: int, session: str = "s1", action: str = "Created"
) -> dict[str, Any]:
    return audit_record(
        namespace=namespace,
        session_id=f"uid-{session}",
        actor="ambient-operator",
        action=action,
        resource=f"sessions/{session}",
        outcome="success",
        details={},
        trace_id="t",
        timestamp=T0 + timedelta(minutes=minutes),
    )


def test_flush_writes_one_object_per_namespace_and_day(memory_store) -> None:
    store = memory_store
    exporter = AuditExporter(store, prefix="archive")
    for rec in (_record("a", 0), _record("a", 2), _record("b", 0)):
        exporter.add(rec)
    keys = exporter.flush()
    assert len(keys) == 3
    assert sum(k.startswith("archive/audit/a/2026/03/01/") for k in keys) == 1
    assert sum(k.startswith("archive/audit/a/2026/03/02/") for k in keys) == 1
    assert sum(k.startswith("archive/audit/b/2026/03/01/") for k in keys) == 1
    assert exporter.flush() == []


def test_flushes_never_overwrite(memory_store) -> None:
    store = memory_store
    exporter = AuditExporter(store)
    for _ in range(3):
        exporter.add(_record("a", 0))
        exporter.flush()
    assert len(store.objects) == 3


def test_a_failed_flush_keeps_the_records(memory_store) -> None:
    store = memory_store
    exporter = AuditExporter(store)
    exporter.add(_record("a", 0))
    store.fail = True
    assert exporter.flush() == []
    store.fail = False
    assert len(exporter.flush()) == 1
    assert len(store.objects) == 1


def test_add_says_when_the_buffer_is_full(memory_store) -> None:
    exporter = AuditExporter(memory_store, max_buffer=2)
    assert exporter.add(_record("a", 0)) is False
    assert exporter.add(_record("a", 0)) is True


def test_trail_by_session_name_or_uid_and_range(memory_store) -> None:
    store = memory_store
    exporter = AuditExporter(store)
    for rec in (_record("a", 0, "s1"), _record("a", 1, "s2"), _record("a", 3, "s1", "Completed")):
        exporter.add(rec)
    exporter.flush()
    since, until = T0 - timedelta(hours=1), T0 + timedelta(hours=1)
    by_name = list(read_trail(store, "", "a", since=since, until=until, session="s1"))
    assert [r["action"] for r in by_name] == ["Created", "Completed"]
    assert list(read_trail(store, "", "a", since=since, until=until, session="uid-s1")) == by_name
    whole = list(read_trail(store, "", "a", since=since, until=until))
    assert len(whole) == 3
    early = list(read_trail(store, "", "a", since=since, until=T0 + timedelta(minutes=1)))
    assert len(early) == 1
    assert list(read_trail(store, "", "b", since=since, until=until)) == []


def test_trail_refuses_naive_times(memory_store) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        list(read_trail(memory_store, "", "a", since=datetime(2026, 1, 1), until=T0))
