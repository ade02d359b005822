"""The operator's status write path (a JSON patch guarded by resourceVersion) on the real
API server: a stale writer gets 409 and changes nothing, concurrent writers lose no entry
and rewrite none, and the CRD's append-only rules still refuse a patch that tries."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import Any

import pytest

from ambient.common.kube.client import ConflictError, Kube
from ambient.common.kube.errors import InvalidError
from ambient.crds.events import HistoryEvent
from ambient.crds.models import Session
from ambient.operator.sessions.status import StatusEditor

pytestmark = pytest.mark.integration

GROUP, VERSION = "ambient.ai", "v1alpha1"
JSON_PATCH = "application/json-patch+json"


@pytest.fixture
def kube(cluster: Any) -> Kube:
    return Kube(8, kubeconfig=cluster.kubeconfig)


def _appended(kube: Kube, namespace: str, name: str, entry_id: str) -> tuple[str, Any, Any]:
    """Read the Session and plan one append, as the operator's writers do: the version
    read, the status stored at it, and the status to write."""
    body = kube.get_session(namespace, name)
    session = Session.model_validate(body)
    edit = StatusEditor(session.status, datetime.now(UTC), session.metadata.generation)
    assert edit.append(entry_id, HistoryEvent.NOTIFICATION_DELIVERED, {"writer": entry_id})
    new = edit.status.model_dump(mode="json", by_alias=True, exclude_none=True)
    return session.metadata.resource_version, body.get("status"), new


def _write(kube: Kube, namespace: str, name: str, entry_id: str) -> int:
    """Append one entry, planning again on every conflict; returns the conflicts met."""
    conflicts = 0
    while True:
        rv, stored, new = _appended(kube, namespace, name, entry_id)
        try:
            kube.patch_session_status(namespace, name, rv, stored, new)
            return conflicts
        except ConflictError:
            conflicts += 1


def test_a_stale_writer_gets_a_conflict_and_changes_nothing(
    cluster: Any, kube: Kube, namespace: str, make_session: Any
) -> None:
    cluster.custom.create_namespaced_custom_object(
        GROUP, VERSION, namespace, "sessions", make_session("stale", framework="no-such-one")
    )
    _write(kube, namespace, "stale", "first")
    stale = _appended(kube, namespace, "stale", "late")
    _write(kube, namespace, "stale", "meanwhile")  # lands between the read and the write
    with pytest.raises(ConflictError):
        kube.patch_session_status(namespace, "stale", *stale)
    history = cluster.session(namespace, "stale")["status"]["history"]
    ids = [e["id"] for e in history]
    assert "meanwhile" in ids and "late" not in ids
    # Planned again from what is stored, it lands after the concurrent entry.
    _write(kube, namespace, "stale", "late")
    history = cluster.session(namespace, "stale")["status"]["history"]
    ids = [e["id"] for e in history]
    # The operator may append its own entries (this Session names no known framework)
    # between or after ours; what matters is the order and that each landed once.
    assert ids.count("late") == 1 and ids.count("meanwhile") == 1
    assert ids.index("meanwhile") < ids.index("late")
    assert [e["seq"] for e in history] == list(range(len(history)))


def test_concurrent_writers_lose_no_entry_and_rewrite_none(
    cluster: Any, kube: Kube, namespace: str, make_session: Any
) -> None:
    cluster.custom.create_namespaced_custom_object(
        GROUP, VERSION, namespace, "sessions", make_session("race", framework="no-such-one")
    )
    writers, each = 4, 5
    conflicts: list[int] = []
    errors: list[BaseException] = []
    start = threading.Barrier(writers)

    def run(w: int) -> None:
        try:
            start.wait()
            conflicts.extend(_write(kube, namespace, "race", f"w{w}-{k}") for k in range(each))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(w,)) for w in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    history = cluster.session(namespace, "race")["status"]["history"]
    mine = [e for e in history if e["id"].startswith("w")]
    assert sorted(e["id"] for e in mine) == sorted(
        f"w{w}-{k}" for w in range(writers) for k in range(each)
    )
    # Every entry is as its writer wrote it, in one consecutive order.
    assert all(e["data"] == {"writer": e["id"]} for e in mine)
    assert [e["seq"] for e in history] == list(range(len(history)))


def test_a_patch_cannot_rewrite_or_drop_an_entry(
    cluster: Any, kube: Kube, namespace: str, make_session: Any
) -> None:
    cluster.custom.create_namespaced_custom_object(
        GROUP, VERSION, namespace, "sessions", make_session("rules", framework="no-such-one")
    )
    for entry_id in ("a", "b"):
        _write(kube, namespace, "rules", entry_id)
    body = cluster.session(namespace, "rules")
    history = body["status"]["history"]
    attempts = {
        "rewrite": [{"op": "replace", "path": "/status/history/0/event", "value": "Forged"}],
        "drop": [{"op": "remove", "path": "/status/history/0"}],
        "insert": [{"op": "add", "path": "/status/history/1", "value": history[0]}],
    }
    path = f"{kube.sessions_path(namespace)}/rules/status"
    # No resourceVersion precondition: the operator watching every namespace may append
    # its own entries meanwhile, and the refusal must come from the rules, not a conflict.
    for label, ops in attempts.items():
        with pytest.raises(InvalidError) as err:
            kube.call("PATCH", path, ops, content_type=JSON_PATCH)
        assert "append-only" in str(err.value) or "consecutive" in str(err.value), label
    after = cluster.session(namespace, "rules")["status"]["history"]
    assert after[: len(history)] == history
