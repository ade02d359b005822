"""``module:attribute``: how framework.config names the graph, crew or agent to run.

The module is importable in the runner image (a team's own image built FROM the runner's
base image with its package installed), or a ``.py`` file in a folder the pod mounts from
a ConfigMap (framework.config.moduleConfigMap, mounted at ``/opt/ambient/agent``):
every folder in AMBIENT_AGENT_PATH (default that one) that exists is put first on
``sys.path``. The attribute is the object itself, or a
function without arguments that returns it (built fresh for the run).
"""

from __future__ import annotations

import importlib
import os
import re
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ambient.runners.sdk.contract import ContractError

AGENT_PATH_ENV = "AMBIENT_AGENT_PATH"
"""Folders (``:``-separated) searched first for the module, e.g. a mounted ConfigMap."""
DEFAULT_AGENT_PATH = "/opt/ambient/agent"
"""Where the operator mounts framework.config.moduleConfigMap (builders.AGENT_MODULE_DIR)."""

_DOTTED = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


@dataclass(frozen=True)
class Target:
    """A parsed ``module:attribute``."""

    module: str
    attribute: str


def parse_target(value: Any, field: str) -> Target:
    """Parse framework.config.<field>; a clear error names the field and the form."""
    if not isinstance(value, str) or not value:
        raise ContractError(
            f"framework.config.{field} must name what to run as 'module:attribute' "
            f"(e.g. 'my_team.agents:{field}'), got {value!r}"
        )
    module, sep, attribute = value.partition(":")
    if not sep or not _DOTTED.fullmatch(module) or not _DOTTED.fullmatch(attribute):
        raise ContractError(
            f"framework.config.{field} {value!r} is not 'module:attribute': a dotted module "
            "path, a colon, and a dotted attribute path of Python identifiers"
        )
    return Target(module, attribute)


def search_paths(env: dict[str, str] | None = None) -> list[str]:
    """The existing folders of AMBIENT_AGENT_PATH, in order."""
    raw = (env if env is not None else os.environ).get(AGENT_PATH_ENV, DEFAULT_AGENT_PATH)
    return [p for p in raw.split(":") if p and Path(p).is_dir()]


def load_target(
    value: Any, field: str, accept: Callable[[Any], bool], kind: str
) -> tuple[Target, Any]:
    """Import the module, resolve the attribute, call it when it is a factory.

    ``accept`` says whether an object is the framework's ``kind``; anything else is
    refused with what was found instead. An import error carries the module's own
    traceback tail, so a team sees which line of its code failed.
    """
    target = parse_target(value, field)
    for path in reversed(search_paths()):
        if path not in sys.path:
            sys.path.insert(0, path)
    try:
        obj: Any = importlib.import_module(target.module)
    except Exception as exc:
        tail = "".join(traceback.format_exception_only(exc)).strip()
        raise ContractError(
            f"framework.config.{field}: cannot import module {target.module!r}: {tail} "
            f"(searched the image and {search_paths() or 'no mounted folder'})"
        ) from exc
    for part in target.attribute.split("."):
        if not hasattr(obj, part):
            raise ContractError(
                f"framework.config.{field}: {target.module!r} has no attribute {target.attribute!r}"
            )
        obj = getattr(obj, part)
    if not accept(obj) and callable(obj):
        try:
            obj = obj()
        except Exception as exc:
            raise ContractError(
                f"framework.config.{field}: {target.module}:{target.attribute}() failed: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
    if not accept(obj):
        raise ContractError(
            f"framework.config.{field}: {target.module}:{target.attribute} is a "
            f"{type(obj).__module__}.{type(obj).__qualname__}, not a {kind} "
            "(nor a function without arguments that returns one)"
        )
    return target, obj
