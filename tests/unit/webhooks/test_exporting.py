"""The webhooks' audit export: the operator's exporter on a flush thread."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from ambient.common.audit.records import record as audit_record
from ambient.webhooks import exporting


def _record(namespace: str) -> dict[str, object]:
    return audit_record(
        namespace=namespace,
        session_id="",
        actor="alice",
        action="admission CREATE sessions",
        resource="sessions/s1",
        outcome="allowed",
        details={},
        trace_id="t",
        timestamp=datetime(2026, 3, 1, 12, tzinfo=UTC),
    )


def test_stop_writes_what_is_buffered_per_namespace_and_day(memory_store) -> None:
    counted: list[int] = []
    export = exporting.BackgroundExport(memory_store, "p", every=3600, on_written=counted.append)
    export.start()
    for namespace in ("a", "a", "b"):
        export.add(_record(namespace))
    export.stop()
    (a_key,) = memory_store.list_keys("p/audit/a/2026/03/01/")
    assert len(memory_store.get(a_key).splitlines()) == 2
    assert len(memory_store.list_keys("p/audit/b/2026/03/01/")) == 1
    assert sum(counted) == 3


def test_records_survive_a_store_outage(memory_store) -> None:
    export = exporting.BackgroundExport(memory_store, "", every=3600)
    export.add(_record("a"))
    memory_store.fail = True
    export.flush()
    assert memory_store.objects == {}
    memory_store.fail = False
    export.flush()
    assert len(memory_store.list_keys("audit/a/")) == 1


def test_no_bucket_means_no_export(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AMBIENT_STORE_BUCKET", raising=False)
    assert exporting.from_environment(5.0) is None
