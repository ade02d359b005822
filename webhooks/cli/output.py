"""What every read command prints: a table for people, or the objects as JSON or YAML
(``--output``) for scripts."""

from __future__ import annotations

import json
import sys
from enum import StrEnum
from typing import Annotated, Any

import typer
import yaml
from rich.console import Console
from rich.table import Table


class Format(StrEnum):
    TABLE = "table"
    JSON = "json"
    YAML = "yaml"


Option = Annotated[Format, typer.Option("--output", "-o", help="table (for people), json or yaml.")]


def console() -> Console:
    """A console for tables: as wide as the terminal, and wide enough for whole names when
    the output goes to a file or a pipe."""
    return Console() if sys.stdout.isatty() else Console(width=250)


def emit(objects: Any, fmt: Format, headers: list[str], rows: list[list[str]]) -> None:
    """Print ``rows`` under ``headers`` as a table, or ``objects`` as JSON or YAML."""
    if fmt is Format.JSON:
        typer.echo(json.dumps(objects, indent=2, sort_keys=True))
    elif fmt is Format.YAML:
        typer.echo(yaml.safe_dump(objects, sort_keys=True), nl=False)
    else:
        table = Table(*headers, box=None, header_style="bold")
        for cells in rows:
            table.add_row(*cells)
        console().print(table)
