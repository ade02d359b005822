"""``ambient keys create|rotate|revoke|list``: a namespace's ingress keys, written into its
NamespacePolicy with your own credentials (guarded by its resourceVersion) and shown once.
The URL printed is the chart's real one: ``--url``, $AMBIENT_INGRESS_URL, or the host of
the chart's Ingress when you may read it."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.console import Console

from ambient.common.kube.errors import ConflictError, KubeError
from ambient.webhooks.cli import keyring, output
from ambient.webhooks.cli.sessions import Target, fail

app = typer.Typer(help="Ingress keys: create, rotate, revoke, list.", no_args_is_help=True)
GROUP = "/apis/ambient.ai/v1alpha1"

Source = Annotated[str, typer.Option("--source", "-s", help=", ".join(keyring.SOURCES))]
Url = Annotated[
    str | None,
    typer.Option(
        "--url",
        "--base-url",
        help="The ingress's base URL (default: $AMBIENT_INGRESS_URL or the chart's Ingress host).",
    ),
]
Namespace = Annotated[
    str | None,
    typer.Option("--namespace", "-n", help="The namespace (also a global option)."),
]


def _target(ctx: typer.Context, namespace: str | None) -> Target:
    target = ctx.obj
    assert isinstance(target, Target)
    if namespace:
        target.namespace = namespace
    return target


def _policy(target: Target) -> dict[str, Any]:
    try:
        items = target.kube.call("GET", f"{GROUP}/namespaces/{target.namespace}/namespacepolicies")
    except KubeError as exc:
        raise fail(str(exc)) from None
    found = items.get("items") or []
    if not found:
        raise fail(f"namespace {target.namespace} has no NamespacePolicy: apply one first")
    return dict(found[0])


def _write(target: Target, policy: dict[str, Any], auth: dict[str, Any]) -> None:
    meta = policy["metadata"]
    patch = {
        "metadata": {"resourceVersion": meta["resourceVersion"]},
        "spec": {"webhookAuth": auth},
    }
    path = f"{GROUP}/namespaces/{target.namespace}/namespacepolicies/{meta['name']}"
    try:
        target.kube.call("PATCH", path, patch, content_type="application/merge-patch+json")
    except ConflictError:
        raise fail("the NamespacePolicy changed meanwhile; run the command again") from None
    except KubeError as exc:
        raise fail(str(exc)) from None


def ingress_url(target: Target, given: str | None) -> str | None:
    """--url, $AMBIENT_INGRESS_URL, or https://<host> of the chart's Ingress."""
    if given or os.environ.get("AMBIENT_INGRESS_URL"):
        return (given or os.environ["AMBIENT_INGRESS_URL"]).rstrip("/")
    selector = "app.kubernetes.io/part-of=ambient,app.kubernetes.io/component=ingress"
    try:
        found = (
            target.kube.call(
                "GET", "/apis/networking.k8s.io/v1/ingresses", query={"labelSelector": selector}
            ).get("items")
            or []
        )
    except KubeError:
        return None  # not readable with these credentials: the admin passes --url
    for item in found:
        for rule in (item.get("spec") or {}).get("rules") or []:
            if rule.get("host"):
                return f"https://{rule['host']}"
    return None


def _show(target: Target, source: str, key: str, url: str | None) -> None:
    console = Console()
    console.print(
        f"[bold]{source} key for {target.namespace}[/bold] (shown once; only its hash is kept):"
    )
    typer.echo(key)
    base = url or "https://<your ingress host>"
    typer.echo(f"\nURL:    {base}/webhooks/{source}/{key}")
    typer.echo(f"or:     {base}/webhooks/{source}  with  Authorization: Bearer <key>")
    if url is None:
        typer.echo("(pass --url or set AMBIENT_INGRESS_URL for the real host)")


def _add(
    ctx: typer.Context,
    source: str,
    *,
    replace: bool,
    expires: str | None,
    description: str,
    url: str | None,
    namespace: str | None,
) -> None:
    target = _target(ctx, namespace)
    now = datetime.now(UTC)
    try:
        expiry = keyring.parse_expiry(expires, now)
        policy = _policy(target)
        auth = (policy.get("spec") or {}).get("webhookAuth") or {}
        new, key = keyring.add(
            auth, source, replace=replace, who=target.kube.whoami(), now=now,
            expires=expiry, description=description,
        )  # fmt: skip
    except keyring.KeyringError as exc:
        raise fail(str(exc), 2) from None
    _write(target, policy, new)
    _show(target, source, key, ingress_url(target, url))


Expires = Annotated[
    str | None, typer.Option(help="30d, 12h or an RFC 3339 time; never by default.")
]
Description = Annotated[str, typer.Option(help="Who holds the key, what it is for.")]


@app.command()
def create(  # noqa: PLR0917 - Typer reads the parameters
    ctx: typer.Context,
    source: Source,
    expires: Expires = None,
    description: Description = "",
    url: Url = None,
    namespace: Namespace = None,
) -> None:
    """A new key for the source; the source's other keys are revoked."""
    _add(
        ctx, source, replace=True, expires=expires, description=description, url=url,
        namespace=namespace,
    )  # fmt: skip


@app.command()
def rotate(  # noqa: PLR0917 - Typer reads the parameters
    ctx: typer.Context,
    source: Source,
    expires: Expires = None,
    description: Description = "",
    url: Url = None,
    namespace: Namespace = None,
) -> None:
    """A new key beside the current ones; revoke the old one once the sender uses the new."""
    _add(
        ctx, source, replace=False, expires=expires, description=description, url=url,
        namespace=namespace,
    )  # fmt: skip


@app.command()
def revoke(  # noqa: PLR0917 - Typer reads the parameters
    ctx: typer.Context,
    source: Source,
    prefix: Annotated[
        str | None, typer.Option(help="The key's visible prefix (or the key itself).")
    ] = None,
    key_hash: Annotated[str | None, typer.Option("--hash", help="The key's SHA-256.")] = None,
    all_keys: Annotated[
        bool, typer.Option("--all", help="Every key of the source (the default).")
    ] = False,
    namespace: Namespace = None,
) -> None:
    """Revoke one key (by --prefix or --hash) or every key of the source."""
    target = _target(ctx, namespace)
    policy = _policy(target)
    auth = (policy.get("spec") or {}).get("webhookAuth") or {}
    try:
        new, count = keyring.revoke(
            auth, source, who=target.kube.whoami(), now=datetime.now(UTC),
            prefix=prefix, digest=key_hash,
        )  # fmt: skip
    except keyring.KeyringError as exc:
        raise fail(str(exc), 1) from None
    _write(target, policy, new)
    Console().print(f"revoked {count} {source} key(s) of {target.namespace}")


@app.command("list")
def list_(
    ctx: typer.Context, out: output.Option = output.Format.TABLE, namespace: Namespace = None
) -> None:
    """The namespace's keys: active ones with when they were last used, then the revoked."""
    target = _target(ctx, namespace)
    policy = _policy(target)
    auth = (policy.get("spec") or {}).get("webhookAuth") or {}
    used = (policy.get("status") or {}).get("keysLastUsed") or {}
    rows = keyring.listing(auth, used)
    objects = [r.__dict__ for r in rows]
    table = [
        [
            r.source,
            r.prefix,
            r.hash[:16],
            r.state,
            r.created or "-",
            r.expires or "-",
            r.last_used or "-",
            r.by or "-",
        ]
        for r in rows
    ]
    output.emit(
        objects, out,
        ["SOURCE", "PREFIX", "HASH", "STATE", "CREATED", "EXPIRES/REVOKED", "LAST USED", "BY"],
        table,
    )  # fmt: skip
