"""Every object-store key the product writes or reads, in one place (pure).

The layout, under the operator's (or ingress's) ``prefix`` in one bucket::

    <prefix>/<namespace>/payloads/<source>/<delivery-id>.json         payload_key
    <prefix>/<namespace>/<session>/<uid>/history/<from>-<to>.json     history_archive_key
    <prefix>/<namespace>/<session>/<artifact name>                    artifact_key (runner)
    <prefix>/archive/sessions/<namespace>/<session>-<uid>.json        session_archive_key
    <prefix>/audit/<namespace>/<YYYY>/<MM>/<DD>/<time>-<batch>.jsonl  audit_batch_key
    <prefix>/deliveries/<namespace>/<YYYY>/<MM>/<DD>/<source>-<digest>.json
                                                                      delivery_request_key

Objects already written must stay readable, so these layouts never change: a new kind of
object gets a new function here. The writers (ingress, operator, runner library), the
retention sweep and the CLIs all build and read keys with these functions.

Two archives, two layouts: a *history archive* holds a run of a live Session's oldest
history entries, next to its artifacts; a *Session archive* is a whole Session (spec and
status) written by retention just before it deletes the Session.
"""

from __future__ import annotations

import re
from datetime import date

from ambient.crds.digests import sha256, sha256_hex
from ambient.runners.sdk.contract import artifact_key

__all__ = [
    "AUDIT",
    "DELIVERIES",
    "artifact_key",
    "artifact_prefix",
    "audit_batch_key",
    "dated_prefix",
    "day_prefix",
    "delivery_request_key",
    "history_archive_key",
    "history_archive_prefix",
    "history_archive_range",
    "key_day",
    "layout_of",
    "location",
    "payload_key",
    "session_archive_key",
    "split_location",
]

AUDIT = "audit"
"""The kind of dated object an exported audit batch is."""
DELIVERIES = "deliveries"
"""The kind of dated object a stored delivery request is."""

_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_HISTORY_RANGE = re.compile(r"^[^/]+/history/(\d+)-(\d+)\.json$")
_HISTORY_TAIL = re.compile(r"(?:^|/)history/\d+-\d+\.json$")
_PLAIN_SEGMENT = re.compile(r"^(?!\.\.?$)[A-Za-z0-9._-]+$")


def _join(prefix: str, *parts: str) -> str:
    """The prefix (slashes trimmed) and the parts, empty ones left out."""
    return "/".join(p for p in (prefix.strip("/"), *parts) if p)


# --- under the namespace: payloads, history archives, artifacts -------------------------


def payload_key(prefix: str, namespace: str, source: str, delivery_id: str) -> str:
    """<prefix>/<namespace>/payloads/<source>/<delivery-id>.json: a payload too large for
    etcd. Deterministic, so a redelivery finds the object it stored before. An id that is
    not a plain key segment is replaced by its sha256."""
    ident = delivery_id if _SAFE_ID.fullmatch(delivery_id) else sha256_hex(delivery_id)
    return _join(prefix, namespace, "payloads", source) + f"/{ident}.json"


def artifact_prefix(prefix: str, namespace: str, session: str) -> str:
    """<prefix>/<namespace>/<session>/: the folder every artifact of a Session lies in."""
    return artifact_key(prefix, namespace, session, "") + "/"


def history_archive_key(
    prefix: str, namespace: str, session: str, uid: str, *, from_seq: int, to_seq: int
) -> str:
    """<prefix>/<namespace>/<session>/<uid>/history/<fromSeq>-<toSeq>.json: a run of a
    live Session's oldest history entries. The uid keeps a re-created Session of the same
    name from meeting its predecessor's archives."""
    return _join(prefix, namespace, session, uid, "history") + f"/{from_seq}-{to_seq}.json"


def history_archive_prefix(prefix: str, namespace: str, session: str) -> str:
    """Where every history archive of every Session named ``session`` lies (all uids)."""
    return _join(prefix, namespace, session) + "/"


def history_archive_range(
    prefix: str, namespace: str, session: str, key: str
) -> tuple[int, int] | None:
    """(fromSeq, toSeq) of a key laid out by ``history_archive_key`` for this Session
    name, else None (an artifact or anything else under the same folder)."""
    base = history_archive_prefix(prefix, namespace, session)
    found = _HISTORY_RANGE.fullmatch(key.removeprefix(base)) if key.startswith(base) else None
    return (int(found[1]), int(found[2])) if found else None


def layout_of(prefix: str, key: str) -> str | None:
    """What ``key`` is by the layout above when it is anything but an artifact (a Session
    archive, an audit batch, a stored delivery request, a payload, a history archive), or
    a key that is not a plain path (an empty, ``.`` or ``..`` segment, odd characters);
    None when it can only be an artifact. Retention deletes artifacts only, so a key a
    Session names must give None here, whatever a namespace or Session happens to be
    called (a namespace ``audit`` would otherwise own ``<prefix>/audit/<other tenant>/``).
    """
    root = _join(prefix) + "/" if prefix.strip("/") else ""
    if not key.startswith(root):
        return "outside the store's prefix"
    parts = key.removeprefix(root).split("/")
    if not all(_PLAIN_SEGMENT.fullmatch(p) for p in parts):
        return "not a plain key (an empty, '.' or '..' segment, or other characters)"
    if parts[0] == "archive":
        return "a Session archive"
    if parts[0] == AUDIT:
        return "an audit batch"
    if parts[0] == DELIVERIES:
        return "a stored delivery request"
    if len(parts) > 1 and parts[1] == "payloads":
        return "a stored payload"
    if _HISTORY_TAIL.search(key):
        return "a history archive"
    return None


# --- Session archives: whole Sessions, written by retention before the delete -------------


def session_archive_key(prefix: str, namespace: str, session: str, uid: str) -> str:
    """<prefix>/archive/sessions/<namespace>/<session>-<uid>.json: a whole expired Session
    (its object as the API served it), archived by retention before it is deleted."""
    return _join(prefix, "archive", "sessions", namespace) + f"/{session}-{uid}.json"


# --- dated objects: audit batches and delivery requests, deleted by the day -------------


def dated_prefix(prefix: str, namespace: str, kind: str) -> str:
    """<prefix>/<kind>/<namespace>/: every dated object of ``kind`` of a namespace."""
    return _join(prefix, kind, namespace) + "/"


def day_prefix(prefix: str, namespace: str, day: date, kind: str = AUDIT) -> str:
    """<prefix>/<kind>/<namespace>/<YYYY>/<MM>/<DD>/: one day's objects of ``kind``."""
    return f"{dated_prefix(prefix, namespace, kind)}{day:%Y/%m/%d}/"


def key_day(key: str) -> date | None:
    """The day of a key laid out by ``day_prefix`` (its last three folders), else None."""
    parts = key.split("/")
    try:
        return date(int(parts[-4]), int(parts[-3]), int(parts[-2]))
    except (IndexError, ValueError):
        return None


def audit_batch_key(
    prefix: str, namespace: str, day: date, first_timestamp: str, batch: str
) -> str:
    """<day prefix>/<first record's time, compact>-<batch>.jsonl: one exported batch of
    audit records, named by its first record's time so a day lists in time order."""
    stamp = first_timestamp.replace(":", "").replace("-", "")[:15]
    return f"{day_prefix(prefix, namespace, day, AUDIT)}{stamp}-{batch}.jsonl"


def delivery_request_key(
    prefix: str, namespace: str, *, source: str, delivery_id: str, body: bytes, day: date
) -> str:
    """<day prefix>/<source>-<digest>.json: a refused or failed delivery's request, kept
    for replay. Deterministic: the same request on the same day is the same object."""
    digest = sha256_hex(f"{source}\n{delivery_id}\n".encode() + sha256(body))[:40]
    return f"{day_prefix(prefix, namespace, day, DELIVERIES)}{source}-{digest}.json"


# --- locations: what a Session records for an object (s3://bucket/key) ------------------


def location(bucket: str, key: str) -> str:
    """The s3:// URI of a key in a bucket, as Sessions record archives and payloads."""
    return f"s3://{bucket}/{key}"


def split_location(value: str) -> tuple[str, str] | None:
    """(bucket, key) of an s3://bucket/key location; None for any other scheme."""
    if not value.startswith("s3://"):
        return None
    bucket, _, key = value.removeprefix("s3://").partition("/")
    return bucket, key
