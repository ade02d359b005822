"""The `ambient` command's -o on the JSON-lines commands (deliveries, audit)."""

from __future__ import annotations

import json

import pytest
import typer
import yaml

from ambient.webhooks.cli.main import with_output


def fake(args: list[str]) -> int:
    if "--json" in args:
        print(json.dumps({"id": 1, "args": args}))
        print(json.dumps({"id": 2}))
    else:
        print("ID  OUTCOME")
    return 0


def test_json_is_the_commands_own_flag_and_yaml_converts_it(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert with_output(fake, ["list", "-n", "a", "-o", "json"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert json.loads(lines[0])["args"] == ["list", "-n", "a", "--json"]
    assert with_output(fake, ["list", "--output=yaml"]) == 0
    records = yaml.safe_load(capsys.readouterr().out)
    assert [r["id"] for r in records] == [1, 2]
    assert with_output(fake, ["list"]) == 0
    assert capsys.readouterr().out.startswith("ID")


def test_an_unknown_output_is_refused() -> None:
    with pytest.raises(typer.Exit):
        with_output(fake, ["list", "-o", "xml"])
