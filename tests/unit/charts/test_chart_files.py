"""The Helm chart's files agree with the code they package (no cluster, no helm needed)."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from ambient.runners.registry import Registry

ROOT = Path(__file__).resolve().parents[3]
CHART = ROOT / "charts" / "ambient"


def _yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


@pytest.mark.parametrize("crd", sorted(p.name for p in (ROOT / "crds").glob("*.yaml")))
def test_chart_crds_are_the_generated_ones(crd: str) -> None:
    chart_copy = CHART / "files" / "crds" / crd
    assert chart_copy.exists(), f"{chart_copy} is missing: run 'make chart-crds'"
    assert chart_copy.read_bytes() == (ROOT / "crds" / crd).read_bytes(), (
        f"{chart_copy} drifted from crds/{crd}: run 'make chart-crds'"
    )


def test_chart_ships_no_crd_the_models_do_not_generate() -> None:
    generated = {p.name for p in (ROOT / "crds").glob("*.yaml")}
    shipped = {p.name for p in (CHART / "files" / "crds").glob("*.yaml")}
    assert shipped == generated


def test_the_crds_are_templates_not_a_crds_folder() -> None:
    """A chart's crds/ folder is installed once and never upgraded, and beside
    templates/crds.yaml it would make helm create the CRDs twice."""
    assert not (CHART / "crds").exists()
    assert '.Files.Glob "files/crds/*.yaml"' in (CHART / "templates" / "crds.yaml").read_text()


@pytest.mark.parametrize("values", ["values.yaml", "ci/production-values.yaml"])
def test_runner_registry_in_values_is_one_the_operator_accepts(values: str) -> None:
    registry = _yaml(CHART / values)["runners"]["registry"]
    parsed = Registry.model_validate(registry)
    for framework in parsed.frameworks.values():
        assert framework.default_version in framework.versions


def test_app_version_is_the_package_version() -> None:
    chart = _yaml(CHART / "Chart.yaml")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert chart["appVersion"] == project["version"]


def test_values_schema_is_valid_json_and_closed() -> None:
    """Unknown top-level keys (typos such as `admision:`) are refused by helm."""
    schema = json.loads((CHART / "values.schema.json").read_text())
    assert schema["additionalProperties"] is False
    assert set(_yaml(CHART / "values.yaml")) <= set(schema["properties"])
