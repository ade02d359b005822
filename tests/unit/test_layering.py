"""Layering: models, planners and builders decide; only adapters talk to Kubernetes.

import-linter cannot see the operator folder (it is deliberately not a regular package,
so it cannot shadow the standard library), so the rule is checked here from the source.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PURE = [
    *sorted((ROOT / "crds").glob("*.py")),
    *(
        ROOT / "operator" / f"{name}.py"
        for name in (
            "planner",
            "policies",
            "builders",
            "status",
            "observe",
            "naming",
            "notifications",
            "retention",
            "audit_export",
            "lifecycle",
            "usage",
            "history_archive",
        )
    ),
    ROOT / "runners" / "registry.py",
    ROOT / "runners" / "sdk" / "contract.py",
    ROOT / "webhooks" / "policy.py",
    *(
        ROOT / "webhooks" / "ingress" / f"{name}.py"
        for name in (
            "signatures",
            "events",
            "keyindex",
            "ratelimit",
            "errors",
            "settings",
            "deliveries",
            "replay",
            "pipeline",
        )
    ),
]
FORBIDDEN = ("kubernetes", "kopf", "ambient.operator.kube", "ambient.operator.handlers")


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize("path", PURE, ids=lambda p: str(p.relative_to(ROOT)))
def test_pure_modules_do_not_touch_the_api(path: Path) -> None:
    bad = {n for n in _imports(path) if n.startswith(FORBIDDEN)}
    assert not bad, f"{path.name} imports {bad}"


def test_only_kube_py_makes_kubernetes_api_requests() -> None:
    users = {
        p.name
        for p in (ROOT / "operator").glob("*.py")
        if any(n.startswith(("kubernetes", "urllib3")) for n in _imports(p))
    }
    assert users == {"kube.py"}
