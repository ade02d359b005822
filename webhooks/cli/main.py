"""``ambient``: one command for the people who run and use the platform, installed also as
``kubectl-ambient`` so that ``kubectl ambient ...`` works as a kubectl plugin.

    ambient sessions list|get|watch|timeline|logs|approve|cancel
    ambient usage                       spend against budget per namespace
    ambient deliveries list|show|replay the ingress's delivery log (see its --help)
    ambient keys create|rotate|revoke|list   ingress keys: prefix, expiry, last use
    ambient audit session|namespace|history

Every command uses your own Kubernetes credentials (``--kubeconfig``, ``--context``, as
kubectl does), so RBAC and the admission webhook decide what you may see and do.
Shell completion: ``ambient --install-completion``.
"""

from __future__ import annotations

import contextlib
import io
import json
import sys
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

import typer
import yaml

from ambient.common.audit import cli as audit_cli
from ambient.common.kube.errors import KubeError
from ambient.webhooks.cli import apikeys, deliveries, output, sessions

app = typer.Typer(
    name="ambient",
    help="Sessions, keys, deliveries, audit and spend of the ambient.ai platform.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
app.add_typer(sessions.app, name="sessions")
app.add_typer(apikeys.app, name="keys")


@app.callback()
def _global(
    ctx: typer.Context,
    namespace: Annotated[
        str | None,
        typer.Option("--namespace", "-n", help="Namespace (default: the context's)."),
    ] = None,
    kubeconfig: Annotated[
        str | None, typer.Option(help="kubeconfig file (default: $KUBECONFIG, ~/.kube/config).")
    ] = None,
    context: Annotated[str | None, typer.Option(help="kubeconfig context to use.")] = None,
) -> None:
    ctx.obj = sessions.Target(kubeconfig, context, namespace)


def _percent(spend: str, budget: str | None) -> str:
    try:
        return f"{Decimal(spend) / Decimal(budget) * 100:.0f}%" if budget else "-"
    except (InvalidOperation, ArithmeticError):
        return "-"


@app.command()
def usage(ctx: typer.Context, out: output.Option = output.Format.TABLE) -> None:
    """Month-to-date spend against the monthly budget, per namespace you may read."""
    target = ctx.obj
    assert isinstance(target, sessions.Target)
    try:
        items: list[dict[str, Any]] = (
            target.kube.call("GET", "/apis/ambient.ai/v1alpha1/namespacepolicies").get("items")
            or []
        )
    except KubeError as exc:
        raise sessions.fail(str(exc)) from None
    rows = []
    for item in sorted(items, key=lambda i: i["metadata"]["namespace"]):
        status, spec = item.get("status") or {}, item.get("spec") or {}
        budget = (spec.get("models") or {}).get("budget") or {}
        spend = str(status.get("monthToDateSpend") or "0")
        limit = budget.get("monthly")
        rows.append(
            [
                item["metadata"]["namespace"],
                str(status.get("month") or "-"),
                f"{spend} {budget.get('currency', 'USD')}",
                str(limit) if limit else "-",
                _percent(spend, limit),
                str(status.get("runningSessions") or 0),
            ]
        )
    headers = ["NAMESPACE", "MONTH", "SPEND", "BUDGET", "USED", "RUNNING"]
    output.emit(items, out, headers, rows)


_PASS_THROUGH = {"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": []}


def with_output(run: Callable[[list[str]], int], args: list[str]) -> int:
    """Run a JSON-lines command with ``-o json|yaml`` as every read command takes it: json
    is its own --json (one record a line); yaml converts those records."""
    wanted = None
    rest: list[str] = []
    it = iter(args)
    for arg in it:
        if arg in ("-o", "--output"):
            wanted = next(it, "")
        elif arg.startswith("--output="):
            wanted = arg.split("=", 1)[1]
        else:
            rest.append(arg)
    if wanted in (None, "table"):
        return run(rest)
    if wanted not in ("json", "yaml"):
        raise sessions.fail(f"--output must be table, json or yaml, not {wanted!r}", 2)
    if wanted == "json":
        return run([*rest, "--json"])
    captured = io.StringIO()
    with contextlib.redirect_stdout(captured):
        code = run([*rest, "--json"])
    records = [json.loads(line) for line in captured.getvalue().splitlines() if line.strip()]
    typer.echo(yaml.safe_dump(records, sort_keys=True), nl=False)
    return code


@app.command("deliveries", context_settings=_PASS_THROUGH, add_help_option=False)
def deliveries_(ctx: typer.Context) -> None:
    """The ingress's delivery log: list, show, replay (see: ambient deliveries --help;
    -o json|yaml on list)."""
    raise typer.Exit(with_output(deliveries.main, list(ctx.args)))


@app.command(context_settings=_PASS_THROUGH, add_help_option=False)
def audit(ctx: typer.Context) -> None:
    """The audit trail: session, namespace, history (see: ambient audit --help;
    -o json|yaml)."""
    raise typer.Exit(with_output(audit_cli.main, list(ctx.args)))


def main() -> None:
    """The console scripts ``ambient`` and ``kubectl-ambient``."""
    app(prog_name="kubectl ambient" if sys.argv[0].endswith("kubectl-ambient") else "ambient")
