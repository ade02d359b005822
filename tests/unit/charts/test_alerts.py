"""The chart's alerts: each expression parses as PromQL (a real parser) and names only
metrics the code exports, and the alerts the issue asks for are all there."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import promql_parser
import pytest
import yaml

from tests.unit.charts.render import render
from tests.unit.charts.test_dashboard import METRIC, exported, sample_names

ROOT = Path(__file__).resolve().parents[3]
CHART = ROOT / "charts" / "ambient"


@cache
def rules() -> list[dict[str, Any]]:
    docs = [d for d in render("prometheusRule.enabled=true") if d["kind"] == "PrometheusRule"]
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
