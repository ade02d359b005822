"""``python -m ambient.common.audit.cli``: read the exported audit trail back.

    audit_cli session  <namespace> <session> [--since ISO] [--until ISO]
    audit_cli namespace <namespace> --since ISO [--until ISO]
    audit_cli history  <namespace> <session> [--session-json FILE|-]

``history`` prints a Session's whole status.history: the entries archived to the store
(each archive's sha256 checked) followed by the window still in the object. Give it the
Session (``kubectl get session NAME -o json | ... --session-json -``); without one it reads
every archive the store holds for that Session name (after the Session was deleted).

The store comes from the same AMBIENT_STORE_* settings the operator uses; credentials from
the standard AWS chain. Prints a table, or JSON lines with ``--json``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from ambient.common.audit.export import ObjectStore, read_trail
from ambient.common.store import keys
from ambient.common.store.s3 import S3Store, StoreSettings
from ambient.crds import times
from ambient.crds.digests import sha256_hex


def iso_time(value: str) -> datetime:
    """An argparse type: an ISO 8601 time, UTC when it names no zone."""
    try:
        return times.parse(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(
            f"{value!r} is not a time: use ISO 8601, e.g. 2026-03-01 or 2026-03-01T12:00:00Z"
        ) from exc


def _table(records: Iterable[dict[str, Any]]) -> str:
    lines = [f"{'TIMESTAMP':32} {'SESSION':36} {'ACTOR':28} {'ACTION':22} OUTCOME"]
    for r in records:
        session = str(r.get("resource", "")).removeprefix("sessions/")
        lines.append(
            f"{r['timestamp']:32} {session:36} {r['actor']:28} {r['action']:22} {r['outcome']}"
        )
    return "\n".join(lines)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="audit_cli", description="Show the exported audit trail.")
    sub = p.add_subparsers(dest="scope", required=True)
    one = sub.add_parser("session", help="one Session's full trail")
    one.add_argument("namespace")
    one.add_argument("session", help="the Session's name or uid")
    one.add_argument("--since", type=iso_time, help="default: 400 days ago")
    one.add_argument("--until", type=iso_time, help="default: now")
    many = sub.add_parser("namespace", help="one namespace's records in a time range")
    many.add_argument("namespace")
    many.add_argument("--since", type=iso_time, required=True)
    many.add_argument("--until", type=iso_time, help="default: now")
    trail = sub.add_parser("history", help="one Session's history, archived entries included")
    trail.add_argument("namespace")
    trail.add_argument("session", help="the Session's name")
    trail.add_argument(
        "--session-json", help="the Session as JSON (a file, or - for stdin), for its window"
    )
    for sp in (one, many, trail):
        sp.add_argument("--json", action="store_true", help="JSON lines instead of a table")
    return p


def _archive_key(location: str) -> str:
    """The key inside the store's bucket of an s3://bucket/key location."""
    found = keys.split_location(location)
    if found is None:
        raise SystemExit(f"history archive {location!r} is not an s3:// location")
    return found[1]


def history_trail(
    store: ObjectStore, prefix: str, namespace: str, session: str, body: dict[str, Any] | None
) -> list[dict[str, Any]]:
    """The Session's full history: archived entries (verified) then the window."""
    status = (body or {}).get("status") or {}
    entries: list[dict[str, Any]] = []
    if body is not None:
        for record in status.get("historyArchives") or []:
            blob = store.get(_archive_key(str(record["location"])))
            if sha256_hex(blob) != record["sha256"]:
                raise SystemExit(
                    f"history archive {record['location']} does not match its sha256 "
                    f"{record['sha256']}: it was changed in the store"
                )
            entries.extend(json.loads(blob)["entries"])
        return entries + list(status.get("history") or [])
    base = keys.history_archive_prefix(prefix, namespace, session)
    for key in store.list_keys(base):
        if keys.history_archive_range(prefix, namespace, session, key) is not None:
            entries.extend(json.loads(store.get(key))["entries"])
    return sorted(entries, key=lambda e: int(e["seq"]))


def _history_table(entries: Iterable[dict[str, Any]]) -> str:
    lines = [f"{'SEQ':>7} {'TIMESTAMP':22} {'EVENT':24} {'ID':40} DATA"]
    for e in entries:
        data = ", ".join(f"{k}={v}" for k, v in sorted((e.get("data") or {}).items()))
        lines.append(f"{e['seq']:>7} {e['timestamp']:22} {e['event']:24} {e['id']:40} {data[:120]}")
    return "\n".join(lines)


def _read_session(source: str | None) -> dict[str, Any] | None:
    if source is None:
        return None
    text = sys.stdin.read() if source == "-" else Path(source).read_text()
    body: dict[str, Any] = json.loads(text)
    return body


def run(argv: list[str], store: ObjectStore, prefix: str, now: datetime) -> str:
    """The CLI's output for ``argv`` (pure apart from reading ``store``)."""
    args = parser().parse_args(argv)
    if args.scope == "history":
        entries = history_trail(
            store, prefix, args.namespace, args.session, _read_session(args.session_json)
        )
        if args.json:
            return "\n".join(json.dumps(e, sort_keys=True) for e in entries)
        return _history_table(entries)
    until = args.until or now
    since = args.since or (until - timedelta(days=400))
    if since >= until:
        raise SystemExit(
            f"--since ({since.isoformat()}) must be before --until ({until.isoformat()})"
        )
    session = args.session if args.scope == "session" else None
    records = list(
        read_trail(store, prefix, args.namespace, since=since, until=until, session=session)
    )
    if args.json:
        return "\n".join(json.dumps(r, sort_keys=True) for r in records)
    return _table(records)


def main(argv: list[str] | None = None) -> int:
    settings = StoreSettings()
    if not settings.bucket:
        sys.stderr.write(
            "no store configured: set AMBIENT_STORE_BUCKET (and AMBIENT_STORE_ENDPOINT_URL "
            "for an S3-compatible server)\n"
        )
        return 2
    out = run(
        sys.argv[1:] if argv is None else argv,
        S3Store.from_settings(settings),
        settings.prefix,
        datetime.now(UTC),
    )
    sys.stdout.write(out + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
