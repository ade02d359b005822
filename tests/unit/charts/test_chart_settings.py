"""Operator settings the chart passes through, rendered by the real helm: the value
reaches the operator's environment, and a value out of range is refused by the schema."""

from __future__ import annotations

from typing import Any

import pytest

from ambient.operator.settings import OperatorSettings
from tests.unit.charts.render import refused, render


def _operator_env(docs: list[dict[str, Any]]) -> dict[str, str]:
    (deployment,) = [
        d
        for d in docs
        if d["kind"] == "Deployment"
        and d["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/component"] == "operator"
    ]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return {e["name"]: e["value"] for e in container["env"] if "value" in e}


def test_the_status_settle_time_reaches_the_operator() -> None:
    default = _operator_env(render())["AMBIENT_SETTLE_SECONDS"]
    assert float(default) == OperatorSettings.model_fields["settle_seconds"].default
    assert _operator_env(render("operator.statusSettleSeconds=15"))["AMBIENT_SETTLE_SECONDS"] == (
        "15"
    )


def test_the_longest_settle_time_in_a_burst_reaches_the_operator() -> None:
    default = _operator_env(render())["AMBIENT_SETTLE_MAX_SECONDS"]
    assert float(default) == OperatorSettings.model_fields["settle_max_seconds"].default
    env = _operator_env(render("operator.statusSettleMaxSeconds=45"))
    assert env["AMBIENT_SETTLE_MAX_SECONDS"] == "45"
    proc = refused("operator.statusSettleMaxSeconds=301")
    assert proc.returncode != 0
    assert "statusSettleMaxSeconds" in proc.stderr


@pytest.mark.parametrize("seconds", ["-1", "61"])
def test_a_settle_time_out_of_range_is_refused(seconds: str) -> None:
    proc = refused(f"operator.statusSettleSeconds={seconds}")
    assert proc.returncode != 0
    assert "statusSettleSeconds" in proc.stderr
