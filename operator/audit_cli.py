"""``python -m ambient.operator.audit_cli``: read the exported audit trail back.

    audit_cli session  <namespace> <session> [--since ISO] [--until ISO]
    audit_cli namespace <namespace> --since ISO [--until ISO]

The store comes from the same AMBIENT_STORE_* settings the operator uses; credentials from
the standard AWS chain. Prints a table, or JSON lines with ``--json``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from ambient.operator.audit_export import ObjectStore, read_trail
from ambient.operator.objectstore import S3Store, StoreSettings


def _when(value: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(
            f"{value!r} is not a time: use ISO 8601, e.g. 2026-03-01 or 2026-03-01T12:00:00Z"
        ) from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


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
    one.add_argument("--since", type=_when, help="default: 400 days ago")
    one.add_argument("--until", type=_when, help="default: now")
    many = sub.add_parser("namespace", help="one namespace's records in a time range")
    many.add_argument("namespace")
    many.add_argument("--since", type=_when, required=True)
    many.add_argument("--until", type=_when, help="default: now")
    for sp in (one, many):
        sp.add_argument("--json", action="store_true", help="JSON lines instead of a table")
    return p


def run(argv: list[str], store: ObjectStore, prefix: str, now: datetime) -> str:
    """The CLI's output for ``argv`` (pure apart from reading ``store``)."""
    args = parser().parse_args(argv)
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
