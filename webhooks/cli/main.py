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

import sys
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

import typer

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


@app.command("deliveries", context_settings=_PASS_THROUGH, add_help_option=False)
def deliveries_(ctx: typer.Context) -> None:
    """The ingress's delivery log: list, show, replay (see: ambient deliveries --help)."""
    raise typer.Exit(deliveries.main(list(ctx.args)))


@app.command(context_settings=_PASS_THROUGH, add_help_option=False)
def audit(ctx: typer.Context) -> None:
    """The audit trail: session, namespace, history (see: ambient audit --help)."""
    raise typer.Exit(audit_cli.main(list(ctx.args)))


def main() -> None:
    """The console scripts ``ambient`` and ``kubectl-ambient``."""
    app(prog_name="kubectl ambient" if sys.argv[0].endswith("kubectl-ambient") else "ambient")
