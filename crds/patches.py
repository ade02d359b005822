"""Status writes as JSON patches (RFC 6902): what changed since the stored status, guarded
by the resourceVersion it was read at.

Why a JSON patch and not a full PUT or a merge patch: a PUT and a merge patch (RFC 7386,
which replaces a list whole) both carry the whole history with every write; a JSON patch
carries the entries a write appends (``add`` at ``/status/history/-``) and the top-level
status fields that changed, so the request and what the API server decodes from it stay
small however long the history grows.

Why the resourceVersion precondition and not only a ``test`` on the last history entry:
the status a writer computes (phase, conditions, the seq of the entries it appends)
depends on the whole status it read, not only on the history's end. The first operation
replaces ``/metadata/resourceVersion`` with the version the status was read at; the API
server applies the patch to the stored object and refuses the update with 409 Conflict
when the patched object's resourceVersion is not the stored one (the same check a PUT
gets), also when a concurrent write lands between its read and its write to etcd (it
applies the patch again to the newer object, which then fails the same way). So a
concurrent writer's entry is never lost or rewritten: the loser re-reads and plans
again, exactly as with a PUT.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeGuard

Operation = dict[str, Any]

HISTORY = "history"


def _pointer(key: str) -> str:
    """One JSON pointer segment (RFC 6901 escapes)."""
    return key.replace("~", "~0").replace("/", "~1")


def _appended(before: Any, after: Any) -> TypeGuard[list[Any]]:
    """Whether ``after`` is the list ``before`` with entries added at its end."""
    return (
        isinstance(before, list)
        and isinstance(after, list)
        and len(after) > len(before)
        and after[: len(before)] == before
    )


def status_patch(
    resource_version: str, old: Mapping[str, Any] | None, new: Mapping[str, Any]
) -> list[Operation]:
    """The JSON patch that turns the stored ``old`` status (as read at
    ``resource_version``) into ``new``: the precondition first, then one operation per
    top-level field that changed, and the appended history entries one by one.

    ``old`` must be the status as stored at that version, or its dump through the model
    for a writer that removes no field (a field ``old`` names and ``new`` does not is
    removed with ``remove``, which fails on a field that is not stored). History that is
    not ``old``'s plus entries at the end (the archiver dropped a prefix) is written
    whole. An unchanged status gives the precondition alone (the API server then writes
    nothing)."""
    if not resource_version:
        raise ValueError("a status patch needs the resourceVersion it was computed from")
    ops: list[Operation] = [
        {"op": "replace", "path": "/metadata/resourceVersion", "value": resource_version}
    ]
    if not old:  # no status stored yet (or an empty one): there is no /status to add to
        ops.append({"op": "add", "path": "/status", "value": dict(new)})
        return ops
    for key, value in new.items():
        before = old.get(key)
        if key in old and before == value:
            continue
        path = f"/status/{_pointer(key)}"
        if key == HISTORY and _appended(before, value):
            ops.extend(
                {"op": "add", "path": f"{path}/-", "value": entry} for entry in value[len(before) :]
            )
            continue
        # "add" on an existing member replaces it (RFC 6902, 4.1).
        ops.append({"op": "add", "path": path, "value": value})
    ops.extend(
        {"op": "remove", "path": f"/status/{_pointer(key)}"} for key in old if key not in new
    )
    return ops
