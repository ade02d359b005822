"""The chart's alerts: each expression parses as PromQL (a real parser) and names only
metrics the code exports, and the alerts the issue asks for are all there."""

from __future__ import annotations

import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import promql_parser
import pytest
import yaml

from tests.unit.charts.test_dashboard import METRIC, exported, sample_names

ROOT = Path(__file__).resolve().parents[3]
CHART = ROOT / "charts" / "ambient"


@cache
def rules() -> list[dict[str, Any]]:
    helm = subprocess.run(
        [str(ROOT / "hack" / "build-tools.sh"), "helm"],
        capture_output=True, text=True, check=True, timeout=1800,
    ).stdout.strip().split("=", 1)[1]  # fmt: skip
    out = subprocess.run(
        [helm, "template", "x", str(CHART), "--kube-version", "1.35.4",
         "--set", "prometheusRule.enabled=true"],
        capture_output=True, text=True, check=True, timeout=120,
    ).stdout  # fmt: skip
    docs = [d for d in yaml.safe_load_all(out) if d and d["kind"] == "PrometheusRule"]
    assert len(docs) == 1
    return [rule for group in docs[0]["spec"]["groups"] for rule in group["rules"]]


def test_every_alert_the_issue_asks_for_is_there() -> None:
    names = {r["alert"] for r in rules()}
    assert names >= {
        "AmbientReconcileErrors",
        "AmbientQueueStuck",
        "AmbientAdmissionErrors",
        "AmbientAdmissionSlow",
        "AmbientDeliveriesFailing",
        "AmbientBudgetNearLimit",
        "AmbientStoreUnreachable",
    }


@pytest.mark.parametrize("rule", rules(), ids=lambda r: r["alert"])
def test_the_expression_parses_and_uses_only_exported_metrics(rule: dict[str, Any]) -> None:
    promql_parser.parse(rule["expr"])  # raises ValueError on a syntax error
    used = set(METRIC.findall(rule["expr"]))
    assert used, "an alert on none of our metrics"
    missing = used - sample_names(exported())
    assert not missing, f"{rule['alert']} uses metrics nobody exports: {sorted(missing)}"
    assert rule["labels"]["severity"] in {"warning", "critical"}
    assert rule["annotations"]["summary"] and rule["annotations"]["description"]


def test_the_parser_would_catch_a_broken_expression() -> None:
    with pytest.raises(ValueError, match="parenthesis"):
        promql_parser.parse("sum(rate(ambient_reconcile_errors_total[5m]) > 0")


def test_off_by_default() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert values["prometheusRule"]["enabled"] is False
