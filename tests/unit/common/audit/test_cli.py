"""audit_cli history: archived entries (checked) followed by the window."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from ambient.common.audit.cli import history_trail, run

NOW = datetime(2026, 3, 1, tzinfo=UTC)


class Store:
    def __init__(self, objects: dict[str, bytes]) -> None:
        self.objects = objects

    def put_new(self, key: str, body: bytes) -> None:
        self.objects[key] = body

    def list_keys(self, prefix: str) -> list[str]:
        return sorted(k for k in self.objects if k.startswith(prefix))

    def get(self, key: str) -> bytes:
        return self.objects[key]


def _e(seq: int) -> dict[str, object]:
    return {"seq": seq, "id": f"e{seq}", "timestamp": "t", "event": "E", "data": {"n": str(seq)}}


def _setup() -> tuple[Store, dict[str, object]]:
    blobs = {
        "p/ns/s/u/history/0-1.json": json.dumps({"entries": [_e(0), _e(1)]}).encode(),
        "p/ns/s/u/history/2-3.json": json.dumps({"entries": [_e(2), _e(3)]}).encode(),
    }
    archives = [
        {
            "fromSeq": int(k.rsplit("/", 1)[1].split("-")[0]),
            "location": f"s3://bucket/{k}",
            "sha256": hashlib.sha256(v).hexdigest(),
        }
        for k, v in blobs.items()
    ]
    body = {"status": {"historyArchives": archives, "history": [_e(4), _e(5)]}}
    return Store(dict(blobs)), body


def test_the_trail_is_the_archives_then_the_window(tmp_path: Path) -> None:
    store, body = _setup()
    assert [e["seq"] for e in history_trail(store, "p", "ns", "s", body)] == [0, 1, 2, 3, 4, 5]
    path = tmp_path / "s.json"
    path.write_text(json.dumps(body))
    table = run(["history", "ns", "s", "--session-json", str(path)], store, "p", NOW)
    assert len(table.splitlines()) == 7 and "n=5" in table.splitlines()[-1]
    # The Session gone: the store alone gives the archived entries.
    alone = run(["history", "ns", "s", "--json"], store, "p", NOW).splitlines()
    assert [json.loads(line)["seq"] for line in alone] == [0, 1, 2, 3]


def test_a_changed_archive_is_refused() -> None:
    store, body = _setup()
    store.objects["p/ns/s/u/history/2-3.json"] = json.dumps({"entries": [_e(2)]}).encode()
    with pytest.raises(SystemExit, match="does not match its sha256"):
        history_trail(store, "p", "ns", "s", body)
