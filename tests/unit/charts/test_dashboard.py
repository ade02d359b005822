"""The Grafana dashboard in the chart queries only metrics the code really exports, and
every exported metric is named by the Prometheus conventions."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient
from prometheus_client import generate_latest

from ambient.common.store.s3 import AlreadyExistsError
from ambient.operator import metrics as operator_metrics
from ambient.webhooks.admission.app import create_app as admission_app
from ambient.webhooks.admission.policy_index import PolicyIndex
from ambient.webhooks.admission.settings import AdmissionSettings
from ambient.webhooks.exporting import BackgroundExport
from ambient.webhooks.ingress.app import create_app as ingress_app
from ambient.webhooks.ingress.delivery_log import DeliveryLog
from ambient.webhooks.ingress.keyindex import KeyIndex

CHART = Path(__file__).resolve().parents[3] / "charts" / "ambient"
DASHBOARD = CHART / "dashboards" / "ambient.json"
METRIC = re.compile(r"\bambient_[a-z0-9_]+\b")
SAMPLES = {"histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}


class _NoStore:
    def put_new(self, key: str, body: bytes) -> None:
        raise AlreadyExistsError(key)

    def list_keys(self, prefix: str) -> list[str]:
        return []

    def get(self, key: str) -> bytes:
        raise KeyError(key)


class _NoKube:
    def create_session(self, manifest: dict[str, Any]) -> dict[str, Any] | None:
        return None

    def signing_secret(self, namespace: str, secret: str, source: str) -> str | None:
        return None


def _families(exposition: str) -> dict[str, str]:
    """Metric family name -> type, from the # TYPE lines of a scrape."""
    found = {}
    for line in exposition.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split()
            found[name] = kind
    return found


def exported() -> dict[str, str]:
    """Every family each component exports (with the store configured), by scraping it."""
    operator = operator_metrics.create(lambda: [], lambda: [])
    families = _families(generate_latest(operator.registry).decode())
    export = BackgroundExport(_NoStore(), "", every=60)
    ingress = ingress_app(KeyIndex(), _NoKube(), delivery_log=DeliveryLog(export))
    families |= _families(TestClient(ingress).get("/metrics").text)
    admission = admission_app(AdmissionSettings(), PolicyIndex(), export=export)
    families |= _families(TestClient(admission).get("/metrics").text)
    return {
        name: kind
        for name, kind in families.items()
        # prometheus_client adds a <counter>_created gauge of its own to each counter.
        if name.startswith("ambient_") and not name.endswith("_created")
    }


def sample_names(families: dict[str, str]) -> set[str]:
    """The series names a query can use (a counter's family is already named ..._total)."""
    return {name + suffix for name, kind in families.items() for suffix in SAMPLES.get(kind, ("",))}


def queries(dashboard: dict[str, Any]) -> list[str]:
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    for variable in dashboard["templating"]["list"]:
        query = variable.get("query")
        if isinstance(query, dict):
            exprs.append(query["query"])
    return exprs


def test_every_metric_the_dashboard_queries_is_exported() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    names = sample_names(exported())
    used = {m for expr in queries(dashboard) for m in METRIC.findall(expr)}
    assert used, "the dashboard queries no ambient metric"
    missing = sorted(used - names)
    assert not missing, f"the dashboard queries metrics nobody exports: {missing}"


def test_the_issue_s_metrics_are_all_on_the_dashboard() -> None:
    used = {m for expr in queries(json.loads(DASHBOARD.read_text())) for m in METRIC.findall(expr)}
    for wanted in (
        "ambient_sessions",
        "ambient_queue_depth",
        "ambient_reconcile_duration_seconds_bucket",
        "ambient_admission_duration_seconds_bucket",
        "ambient_admission_decisions_total",
        "ambient_ingress_deliveries_total",
        "ambient_namespace_spend_month_to_date",
    ):
        assert wanted in used


@pytest.mark.parametrize(("name", "kind"), sorted(exported().items()))
def test_metric_names_follow_the_conventions(name: str, kind: str) -> None:
    assert re.fullmatch(r"ambient_[a-z][a-z0-9_]*[a-z0-9]", name)
    if kind == "histogram":
        assert name.endswith(("_seconds", "_bytes")), "a histogram names its unit"
    if kind == "counter":
        assert name.endswith("_total"), "a counter ends in _total"
    if kind == "gauge":
        assert not name.endswith("_total"), "_total is for counters"


def test_every_panel_has_a_query_and_a_datasource() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    assert panels
    for panel in panels:
        assert panel["targets"] and panel["datasource"]["uid"] == "${datasource}", panel["title"]
    assert len({p["title"] for p in panels}) == len(panels)


def test_the_chart_ships_it_behind_a_switch_with_the_sidecar_label() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert values["grafana"]["dashboard"]["enabled"] is False
    assert values["grafana"]["dashboard"]["labels"] == {"grafana_dashboard": "1"}
    template = (CHART / "templates" / "dashboard.yaml").read_text()
    assert '.Files.Get "dashboards/ambient.json"' in template
    assert "if .Values.grafana.dashboard.enabled" in template
