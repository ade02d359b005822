"""``ambient sessions ...``: list, read, follow, draw, approve and cancel Sessions with the
caller's own Kubernetes credentials (any kubeconfig context), so RBAC and the admission
webhook decide every write as for ``kubectl``."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from ambient.common.kube.client import Kube
from ambient.common.kube.config import configuration, default_namespace
from ambient.common.kube.errors import KubeError, NotFoundError
from ambient.crds import naming, times
from ambient.webhooks.cli import output, timeline

app = typer.Typer(help="Sessions: list, get, watch, timeline, logs, approve, cancel.")
TERMINAL = {"Completed", "Failed"}


class Target:
    """The cluster and namespace a command acts on (the global options)."""

    def __init__(self, kubeconfig: str | None, context: str | None, namespace: str | None):
        self.kubeconfig, self.context = kubeconfig, context
        self.namespace = namespace or default_namespace(kubeconfig, context)
        self._kube: Kube | None = None

    @property
    def kube(self) -> Kube:
        if self._kube is None:
            self._kube = Kube(connections=2, cfg=configuration(self.kubeconfig, self.context))
        return self._kube


def _target(ctx: typer.Context) -> Target:
    target = ctx.obj
    assert isinstance(target, Target)
    return target


def fail(message: str, code: int = 1) -> typer.Exit:
    Console(stderr=True).print(f"[red]error:[/red] {message}")
    return typer.Exit(code)


def _get(target: Target, name: str) -> dict[str, Any]:
    try:
        return target.kube.call("GET", f"{target.kube.sessions_path(target.namespace)}/{name}")
    except NotFoundError:
        raise fail(f"Session {target.namespace}/{name} not found") from None
    except KubeError as exc:
        raise fail(str(exc)) from None


def _age(stamp: str | None, now: datetime) -> str:
    moment = times.parse_or_none(stamp)
    if moment is None:
        return "-"
    seconds = int((now - moment).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{max(seconds, 0)}s"


def row(body: dict[str, Any], now: datetime, all_namespaces: bool) -> list[str]:
    """A Session as one table row."""
    meta, spec, status = body["metadata"], body.get("spec") or {}, body.get("status") or {}
    cells = [meta.get("namespace", "")] if all_namespaces else []
    return [
        *cells,
        meta["name"],
        status.get("phase") or "Pending",
        status.get("reason") or "",
        (spec.get("framework") or {}).get("type", ""),
        (spec.get("trigger") or {}).get("source", ""),
        str(status.get("attempt") or "-"),
        (status.get("usage") or {}).get("cost", "0"),
        _age(meta.get("creationTimestamp"), now),
    ]


HEADERS = ["NAME", "PHASE", "REASON", "FRAMEWORK", "SOURCE", "ATTEMPT", "COST", "AGE"]


@app.command("list")
def list_(
    ctx: typer.Context,
    all_namespaces: Annotated[
        bool, typer.Option("--all-namespaces", "-A", help="Every namespace you may read.")
    ] = False,
    phase: Annotated[str | None, typer.Option(help="Only Sessions in this phase.")] = None,
    out: output.Option = output.Format.TABLE,
) -> None:
    """List Sessions, newest last."""
    target = _target(ctx)
    try:
        path = target.kube.sessions_path(None if all_namespaces else target.namespace)
        items = target.kube.call("GET", path).get("items") or []
    except KubeError as exc:
        raise fail(str(exc)) from None
    if phase:
        items = [i for i in items if (i.get("status") or {}).get("phase", "Pending") == phase]
    items.sort(key=lambda i: i["metadata"].get("creationTimestamp") or "")
    now = datetime.now(UTC)
    headers = (["NAMESPACE"] if all_namespaces else []) + HEADERS
    output.emit(items, out, headers, [row(i, now, all_namespaces) for i in items])


@app.command()
def get(ctx: typer.Context, name: str, out: output.Option = output.Format.TABLE) -> None:
    """One Session: its state, then its history."""
    body = _get(_target(ctx), name)
    if out is not output.Format.TABLE:
        output.emit(body, out, [], [])
        return
    console = output.console()
    output.emit([body], out, HEADERS, [row(body, datetime.now(UTC), False)])
    history = Table("SEQ", "TIME", "ID", "EVENT", "DATA", box=None)
    for entry in (body.get("status") or {}).get("history") or []:
        data = ", ".join(f"{k}={v}" for k, v in (entry.get("data") or {}).items())
        history.add_row(
            str(entry.get("seq", "")), entry["timestamp"], entry["id"], entry["event"], data[:120]
        )
    console.print(history)


@app.command("timeline")
def draw_timeline(
    ctx: typer.Context,
    name: str,
    html: Annotated[
        Path | None, typer.Option("--html", help="Write a self-contained HTML page here.")
    ] = None,
    width: Annotated[int, typer.Option(help="Width of the time axis in characters.")] = 60,
) -> None:
    """Draw a Session's life on a time axis: phases, attempts, approvals, queue wait, the
    runner's tool uses, notifications and replies."""
    body = _get(_target(ctx), name)
    line = timeline.build(body, datetime.now(UTC))
    if html is not None:
        html.write_text(timeline.to_html(line))
        Console(stderr=True).print(f"wrote {html}")
        return
    console = output.console()
    console.print(
        f"[bold]{line.namespace}/{line.name}[/bold]  {line.phase} {line.reason}  "
        f"{line.seconds:.1f}s, {len(line.marks)} entries"
    )
    axis = Table(box=None, show_header=False, pad_edge=False)
    axis.add_column(style="dim", no_wrap=True)
    axis.add_column(no_wrap=True)
    for span in line.spans:
        style = "red" if span.outcome and span.outcome != "WorkloadSucceeded" else "green"
        label = f"{span.label} {(span.end - span.start).total_seconds():.1f}s"
        axis.add_row(label[:28], f"[{style}]{timeline.bar(line, span.start, span.end, width)}[/]")
    for lane in timeline.LANES[1:]:
        if any(m.lane == lane for m in line.marks):
            axis.add_row(lane, timeline.ticks(line, lane, width))
    axis.add_row("", f"0s{' ' * (width - 2 - len(f'{line.seconds:.0f}s'))}{line.seconds:.0f}s")
    console.print(axis)
    for mark in line.marks:
        style = "red" if mark.warning else ("cyan" if mark.lane == "runner" else "")
        text = f"+{line.offset(mark.at):7.1f}s  {mark.lane:<9} {timeline.describe(mark)}"
        console.print(f"[{style}]{text}[/]" if style else text, highlight=False, markup=bool(style))


@app.command()
def watch(
    ctx: typer.Context,
    name: str,
    interval: Annotated[float, typer.Option(help="Seconds between looks.")] = 1.0,
) -> None:
    """Follow a Session: print each new history entry until it ends."""
    target = _target(ctx)
    seen: set[str] = set()
    console = output.console()
    while True:
        body = _get(target, name)
        status = body.get("status") or {}
        for entry in status.get("history") or []:
            if entry["id"] not in seen:
                seen.add(entry["id"])
                data = ", ".join(f"{k}={v}" for k, v in (entry.get("data") or {}).items())
                console.print(f"{entry['timestamp']}  {entry['event']:<22} {data[:120]}")
        if status.get("phase") in TERMINAL:
            console.print(f"[bold]{status['phase']}[/bold] {status.get('reason') or ''}")
            raise typer.Exit(0 if status["phase"] == "Completed" else 1)
        time.sleep(interval)


@app.command()
def logs(
    ctx: typer.Context,
    name: str,
    tail: Annotated[int | None, typer.Option(help="Only the last N lines.")] = None,
) -> None:
    """The runner pod's log of the Session's current attempt."""
    target = _target(ctx)
    body = _get(target, name)
    pod = ((body.get("status") or {}).get("workload") or {}).get("podName")
    if not pod:
        raise fail(f"Session {target.namespace}/{name} has no runner pod yet")
    try:
        typer.echo(target.kube.pod_log(target.namespace, pod, tail), nl=False)
    except KubeError as exc:
        raise fail(f"pod {pod}: {exc}") from None


def _me(target: Target) -> str:
    try:
        return target.kube.whoami()
    except KubeError as exc:
        raise fail(f"cannot tell who you are (SelfSubjectReview): {exc}") from None


@app.command()
def approve(ctx: typer.Context, name: str) -> None:
    """Approve a Session awaiting approval, as yourself (the policy's approvers decide)."""
    target = _target(ctx)
    me = _me(target)
    patch = {"metadata": {"annotations": {naming.ANNOTATION_APPROVED_BY: me}}}
    try:
        target.kube.patch_session(target.namespace, name, patch)
    except KubeError as exc:
        raise fail(f"not approved: {exc}") from None
    Console().print(f"Session {target.namespace}/{name} approved by {me}")


@app.command()
def cancel(ctx: typer.Context, name: str) -> None:
    """Cancel a Session: its runner is stopped and it ends Failed, reason Cancelled."""
    target = _target(ctx)
    me = _me(target)
    patch = {
        "metadata": {"annotations": {naming.ANNOTATION_CANCELLED_BY: me}},
        "spec": {"cancel": True},
    }
    try:
        target.kube.patch_session(target.namespace, name, patch)
    except KubeError as exc:
        raise fail(f"not cancelled: {exc}") from None
    Console().print(f"Session {target.namespace}/{name} cancelled by {me}")
