"""The chart rendered by the real, pinned helm, for the chart's unit tests."""

from __future__ import annotations

import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[3]
CHART = ROOT / "charts" / "ambient"
KUBE_VERSION = "1.35.4"


@cache
def helm() -> str:
    """The pinned helm hack/build-tools.sh caches (built once per machine)."""
    out = subprocess.run(
        [str(ROOT / "hack" / "build-tools.sh"), "helm"],
        capture_output=True, text=True, check=True, timeout=1800,
    ).stdout  # fmt: skip
    return out.strip().split("=", 1)[1]


def render(*settings: str, api_versions: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """Every object ``helm template`` renders with these ``--set`` settings (and, as the
    cluster would say it serves them, these ``api_versions``)."""
    args = [helm(), "template", "x", str(CHART), "--kube-version", KUBE_VERSION]
    for version in api_versions:
        args += ["--api-versions", version]
    for setting in settings:
        args += ["--set", setting]
    out = subprocess.run(args, capture_output=True, text=True, check=True, timeout=120).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def refused(*settings: str) -> subprocess.CompletedProcess[str]:
    """``helm template`` with settings the chart's schema or templates should refuse."""
    args = [helm(), "template", "x", str(CHART)]
    for setting in settings:
        args += ["--set", setting]
    return subprocess.run(args, capture_output=True, text=True, check=False, timeout=120)
