"""Status writes as JSON patches: applied to the stored status, each patch gives exactly
the new status, appends only what was added to the history, and always carries the
resourceVersion precondition first."""

from __future__ import annotations

import copy
from typing import Any

import jsonpatch
import pytest

from ambient.crds.patches import status_patch

RV = "4242"


def entry(seq: int, event: str = "Ev") -> dict[str, Any]:
    return {"seq": seq, "id": f"e{seq}", "timestamp": "t", "event": event, "data": {}}


def stored(status: dict[str, Any] | None) -> dict[str, Any]:
    body: dict[str, Any] = {"metadata": {"name": "s", "resourceVersion": RV}}
    if status is not None:
        body["status"] = status
    return body


def applied(status: dict[str, Any] | None, new: dict[str, Any]) -> tuple[list[Any], Any]:
    ops = status_patch(RV, copy.deepcopy(status), new)
    return ops, jsonpatch.apply_patch(stored(status), ops)


def test_the_precondition_comes_first_and_names_the_version_read() -> None:
    ops, _ = applied({"phase": "Pending"}, {"phase": "Running"})
    assert ops[0] == {"op": "replace", "path": "/metadata/resourceVersion", "value": RV}


def test_a_first_write_adds_the_whole_status() -> None:
    new = {"phase": "Pending", "history": [entry(0)]}
    for old in (None, {}):
        ops, body = applied(old, new)
        assert body["status"] == new
        assert ops[1:] == [{"op": "add", "path": "/status", "value": new}]


def test_appended_entries_are_added_one_by_one_at_the_end() -> None:
    old = {"phase": "Pending", "history": [entry(0), entry(1)], "reason": "WorkloadCreated"}
    new = {"phase": "Running", "history": [entry(0), entry(1), entry(2), entry(3)]}
    ops, body = applied(old, new)
    assert body["status"] == new
    assert {"op": "add", "path": "/status/history/-", "value": entry(2)} in ops
    # Nothing of the entries already stored is sent again.
    assert all(op.get("value") not in (entry(0), entry(1)) for op in ops)
    assert {"op": "remove", "path": "/status/reason"} in ops


def test_a_history_that_is_not_an_append_is_written_whole() -> None:
    # The archiver drops a prefix; a rewritten entry must not be hidden as an append.
    for new_history in ([entry(1), entry(2)], [entry(0, "Other"), entry(1), entry(2)]):
        old = {"history": [entry(0), entry(1)]}
        new = {"history": new_history}
        ops, body = applied(old, new)
        assert body["status"] == new
        assert ops[1:] == [{"op": "add", "path": "/status/history", "value": new_history}]


def test_unchanged_fields_are_not_sent() -> None:
    old = {"phase": "Running", "workload": {"jobName": "j"}, "history": [entry(0)]}
    ops, body = applied(old, copy.deepcopy(old))
    assert ops[1:] == []
    assert body["status"] == old


def test_field_names_are_escaped_as_json_pointers() -> None:
    old = {"a/b": 1, "c~d": 2}
    new = {"a/b": 3}
    ops, body = applied(old, new)
    assert body["status"] == new
    assert [op["path"] for op in ops[1:]] == ["/status/a~1b", "/status/c~0d"]


def test_no_version_no_patch() -> None:
    with pytest.raises(ValueError, match="resourceVersion"):
        status_patch("", {}, {"phase": "Pending"})
