"""module:attribute loading (runners/sdk/target.py): every way it can be wrong says so."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from ambient.runners.sdk.contract import ContractError
from ambient.runners.sdk.target import AGENT_PATH_ENV, Target, load_target, parse_target


@pytest.mark.parametrize(
    ("value", "target"),
    [("pkg.mod:graph", Target("pkg.mod", "graph")), ("m:a.b", Target("m", "a.b"))],
)
def test_parse(value: str, target: Target) -> None:
    assert parse_target(value, "graph") == target


@pytest.mark.parametrize("value", ["", None, 3, "mod", "mod:", ":attr", "a b:c", "m:a-b", "../x:y"])
def test_parse_refuses_anything_else(value: object) -> None:
    with pytest.raises(ContractError, match=r"framework\.config\.graph"):
        parse_target(value, "graph")


@pytest.fixture
def agents(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder of modules on AMBIENT_AGENT_PATH, as a mounted ConfigMap would be."""
    monkeypatch.setenv(AGENT_PATH_ENV, f"{tmp_path}:/nonexistent")
    monkeypatch.setattr(sys, "path", list(sys.path))
    name = f"team_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{name}.py").write_text(
        "class Graph: pass\n"
        "graph = Graph()\n"
        "def build(): return Graph()\n"
        "def fails(): raise RuntimeError('no key')\n"
        "other = 42\n"
    )
    (tmp_path / "broken_mod.py").write_text("import does_not_exist\n")
    monkeypatch.setattr("ambient.runners.sdk.target.DEFAULT_AGENT_PATH", str(tmp_path))
    return tmp_path / f"{name}.py"


def _is_graph(obj: object) -> bool:
    return type(obj).__name__ == "Graph"


def test_loads_an_object_or_calls_a_factory_from_the_mounted_folder(agents: Path) -> None:
    module = agents.stem
    assert _is_graph(load_target(f"{module}:graph", "graph", _is_graph, "graph")[1])
    assert _is_graph(load_target(f"{module}:build", "graph", _is_graph, "graph")[1])


@pytest.mark.parametrize(
    ("attribute", "message"),
    [
        ("missing", "has no attribute 'missing'"),
        ("other", "is a builtins.int, not a graph"),
        ("fails", r"fails\(\) failed: RuntimeError: no key"),
    ],
)
def test_wrong_attributes_are_named(agents: Path, attribute: str, message: str) -> None:
    with pytest.raises(ContractError, match=message):
        load_target(f"{agents.stem}:{attribute}", "graph", _is_graph, "graph")


def test_an_import_error_in_the_teams_module_is_shown(agents: Path) -> None:
    with pytest.raises(ContractError, match=r"cannot import module 'broken_mod'.*does_not_exist"):
        load_target("broken_mod:x", "graph", _is_graph, "graph")
