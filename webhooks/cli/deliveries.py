"""``python -m ambient.webhooks.cli.deliveries``: the ingress's delivery log, for admins.

    deliveries list   -n NS [--since ISO] [--until ISO] [--outcome O] [--source S] [--json]
    deliveries show   -n NS ID [--since ISO] [--until ISO] [--body]
    deliveries replay -n NS ID [--since ISO] [--until ISO]

ID is a delivery's id as ``list`` shows it (the ingress's trace id, or a unique prefix of
8+ characters), or the sender's delivery id (GitHub's X-GitHub-Delivery, Jira's
X-Atlassian-Webhook-Identifier, Slack's event_id). The log is read from the artifact store
(AMBIENT_STORE_*, credentials from the standard AWS chain); ``replay`` uses your own
Kubernetes credentials (kubeconfig or in-cluster) to read the namespace's NamespacePolicy
and signing Secret and to create the Session, so RBAC and the admission webhook decide as
for any Session you create. Every replay is an audit record naming you.

Exit codes: 0 the Session was created or already exists; 1 the replay was refused or
ignored (the reason is printed; nothing was created); 2 bad usage or nothing to replay.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import pydantic

from ambient.common.audit.cli import iso_time
from ambient.common.audit.export import AuditExporter, ObjectStore, read_trail
from ambient.common.store.s3 import S3Store, StoreSettings
from ambient.webhooks.ingress import delivery_records as deliveries
from ambient.webhooks.ingress import events, replay
from ambient.webhooks.ingress.errors import IngressError
from ambient.webhooks.ingress.keyindex import Tenant
from ambient.webhooks.ingress.pipeline import Audit, Pipeline
from ambient.webhooks.ingress.settings import IngressSettings

DEFAULT_WINDOW = timedelta(days=30)  # retention.deliveries' default


class ReplayStore(ObjectStore, Protocol):
    """The delivery log's store, which also takes payloads too large for a Session."""

    def put_once(self, key: str, body: bytes) -> bool: ...

    def location(self, key: str) -> str: ...


class ReplayApi(Protocol):
    """The Kubernetes calls a replay makes (ingress.sessions_api.SessionsApi)."""

    def whoami(self) -> str: ...

    def read_policy(self, namespace: str) -> dict[str, Any] | None: ...

    def signing_secret(self, namespace: str, secret: str, source: str) -> str | None: ...

    def create_session(self, manifest: dict[str, Any]) -> dict[str, Any] | None: ...


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="deliveries", description="The ingress's delivery log.")
    sub = p.add_subparsers(dest="command", required=True)
    ls = sub.add_parser("list", help="a namespace's deliveries in a time range")
    ls.add_argument("--outcome", help="e.g. created, duplicate, ignored, refused, error")
    ls.add_argument("--source", choices=events.SOURCES)
    ls.add_argument("--json", action="store_true", help="the audit records, as JSON lines")
    show = sub.add_parser("show", help="one delivery's record and stored request")
    show.add_argument("id")
    show.add_argument("--body", action="store_true", help="also print the stored body")
    again = sub.add_parser("replay", help="run a stored refused or failed delivery again")
    again.add_argument("id")
    for sp in (ls, show, again):
        sp.add_argument("-n", "--namespace", required=True)
        sp.add_argument("--since", type=iso_time, help="default: 30 days before --until")
        sp.add_argument("--until", type=iso_time, help="default: now")
    return p


def run(
    argv: list[str],
    store: ReplayStore,
    prefix: str,
    now: datetime,
    kube: Callable[[], ReplayApi],
) -> tuple[int, str]:
    """Exit code and output for ``argv``; ``kube`` is called only by ``replay``."""
    args = parser().parse_args(argv)
    until = args.until or now
    since = args.since or until - DEFAULT_WINDOW
    if since >= until:
        raise SystemExit(
            f"--since ({since.isoformat()}) must be before --until ({until.isoformat()})"
        )
    records = list(read_trail(store, prefix, args.namespace, since=since, until=until))
    if args.command == "list":
        found = deliveries.rows(records, outcome=args.outcome, source=args.source)
        if args.json:
            ids = {r.id for r in found}
            return 0, "\n".join(
                json.dumps(r, sort_keys=True) for r in records if r.get("traceId") in ids
            )
        return 0, deliveries.table(found)
    try:
        row = deliveries.find(deliveries.rows(records), args.id)
    except deliveries.DeliveryNotFoundError as exc:
        return 2, f"{exc} (from {since.isoformat()} to {until.isoformat()}; see --since)"
    record = next(r for r in records if r.get("traceId") == row.id)
    stored = _stored(store, row.request_key) if row.request_key else None
    if args.command == "show":
        return 0, _show(record, stored, body=args.body)
    if stored is None:
        why = (
            "its request has expired (spec.retention.deliveries)"
            if row.request_key
            else "only refused or failed deliveries keep their request"
        )
        return 2, f"delivery {row.id} ({row.outcome}) cannot be replayed: {why}"
    return _replay(record, stored, store, prefix, now=now, api=kube())


def _stored(store: ObjectStore, key: str) -> deliveries.StoredRequest | None:
    """The kept request, or None once retention deleted it (a store outage raises)."""
    if key not in store.list_keys(key):
        return None
    return deliveries.StoredRequest.decode(store.get(key))


def _show(record: dict[str, Any], stored: deliveries.StoredRequest | None, *, body: bool) -> str:
    out = {"record": record}
    if stored is not None:
        raw = stored.raw_body()
        request: dict[str, Any] = {
            "receivedAt": stored.received_at,
            "headers": stored.headers,
            "bodyBytes": len(raw),
        }
        if body:
            request["body"] = raw.decode(errors="replace")
        out["request"] = request
    return json.dumps(out, indent=2, sort_keys=True)


def _replay(
    record: dict[str, Any],
    stored: deliveries.StoredRequest,
    store: ReplayStore,
    prefix: str,
    *,
    now: datetime,
    api: ReplayApi,
) -> tuple[int, str]:
    namespace = stored.namespace
    who = api.whoami()
    body = api.read_policy(namespace)
    if body is None:
        code, outcome, reason, session = 1, "refused", "the namespace has no NamespacePolicy", ""
    else:
        try:
            tenant = replay.tenant_of(namespace, body.get("spec") or {})
        except pydantic.ValidationError as exc:
            return 1, f"the NamespacePolicy in {namespace} is invalid: {exc.error_count()} errors"
        refused = replay.refusal(stored, tenant)
        if refused is not None:
            code, outcome, reason, session = 1, "refused", refused, ""
        else:
            code, outcome, reason, session = _run_pipeline(
                stored, tenant, who=who, store=store, prefix=prefix, api=api
            )
    entry = deliveries.replay_record(
        timestamp=now,
        original=record,
        actor=who,
        session=session,
        outcome=outcome,
        reason=reason,
        trace_id=uuid.uuid4().hex,
    )
    exporter = AuditExporter(store, prefix=prefix)
    exporter.add(entry)
    recorded = bool(exporter.flush())
    lines = {
        "created": f"created Session {namespace}/{session} (replayed by {who})",
        "exists": f"Session {namespace}/{session} already exists for this delivery; "
        "nothing created",
    }
    text = lines.get(outcome, f"not replayed ({outcome}): {reason}; nothing created")
    if not recorded:
        text += "\nwarning: the replay could not be written to the audit trail in the store"
    return code, text


def _run_pipeline(
    stored: deliveries.StoredRequest,
    tenant: Tenant,
    *,
    who: str,
    store: ReplayStore,
    prefix: str,
    api: ReplayApi,
) -> tuple[int, str, str, str]:
    """(exit code, outcome, reason, session) of running ``stored`` through the ingress's
    pipeline again, with the same limit for payloads kept inside the Session."""
    pipeline = Pipeline(
        api, inline_limit=IngressSettings().max_body_bytes, store=store, store_prefix=prefix
    )
    headers = stored.headers
    audit = Audit(source=stored.source, trace_id=stored.trace_id, namespace=tenant.namespace)
    try:
        result = asyncio.run(
            pipeline.run(
                tenant,
                stored.source,
                headers,
                stored.raw_body(),
                audit,
                signed_at=replay.signed_at(stored),
                annotations=replay.annotations_for(stored, who),
            )
        )
    except IngressError as exc:
        return (1, *_failure(exc), "")
    if result.outcome == "created":
        return 0, "created", "", audit.session
    if result.outcome == "duplicate":
        return 0, "exists", "", audit.session
    if result.outcome == "ignored":
        return 1, "ignored", result.decision.ignored or "", ""
    return 1, "nothing", f"a {result.decision.delivery.kind} starts no Session", ""


def _failure(exc: IngressError) -> tuple[str, str]:
    """(outcome, reason) of a replay the pipeline refused, in the words an admin reads."""
    cause = exc.__cause__
    if exc.code == "NameTaken":
        return "conflict", exc.message
    if exc.code == "RefusedByApiServer":
        return "refused", f"the API server refused the Session: {exc.message}"
    if exc.code == "ApiUnavailable":
        return "error", str(cause or exc.message)
    if exc.code == "PayloadConflict":
        return "error", exc.message
    if exc.code == "StoreUnavailable":
        return "error", f"the artifact store cannot be reached to keep the large payload: {cause}"
    if exc.code == "UnsupportedMediaType":
        return "refused", f"MalformedPayload: {exc.message}"
    return "refused", f"{exc.code}: {exc.message}"


def main(argv: list[str] | None = None) -> int:
    settings = StoreSettings()
    if not settings.bucket:
        sys.stderr.write(
            "no store configured: set AMBIENT_STORE_BUCKET (and AMBIENT_STORE_ENDPOINT_URL "
            "for an S3-compatible server), as for the ingress\n"
        )
        return 2

    def kube() -> ReplayApi:
        from ambient.webhooks.ingress.sessions_api import SessionsApi  # noqa: PLC0415 - replay only

        return SessionsApi(connections=4, secret_ttl=0.0)

    code, out = run(
        sys.argv[1:] if argv is None else argv,
        S3Store.from_settings(settings),
        settings.prefix,
        datetime.now(UTC),
        kube,
    )
    (sys.stdout if code == 0 else sys.stderr).write(out + "\n")
    return code


if __name__ == "__main__":
    sys.exit(main())
