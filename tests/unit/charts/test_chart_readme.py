"""charts/ambient/README.md's values table is what hack/chart_readme.py makes of values.yaml,
and every value in values.yaml is documented."""

from __future__ import annotations

from pathlib import Path

import chart_readme
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
VALUES = ROOT / "charts" / "ambient" / "values.yaml"


def _leaves(data: object, prefix: str = "") -> set[str]:
    if isinstance(data, dict) and data:
        out: set[str] = set()
        for key, value in data.items():
            out |= _leaves(value, f"{prefix}{key}.")
        return out
    return {prefix.rstrip(".")}


def test_chart_readme_is_generated_from_values() -> None:
    assert chart_readme.main(["--check"]) == 0, "run 'python hack/chart_readme.py'"


def test_every_value_has_a_row_or_is_inside_one() -> None:
    keys = [row.key for row in chart_readme.rows(VALUES.read_text())]
    for leaf in _leaves(yaml.safe_load(VALUES.read_text())):
        assert any(leaf == key or leaf.startswith(key + ".") for key in keys), leaf
    assert all(row.description for row in chart_readme.rows(VALUES.read_text()))


def test_check_fails_when_values_change(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    values = tmp_path / "values.yaml"
    readme = tmp_path / "README.md"
    values.write_text(VALUES.read_text().replace("replicas: 2", "replicas: 3", 1))
    readme.write_text((VALUES.parent / "README.md").read_text())
    monkeypatch.setattr(chart_readme, "VALUES", values)
    monkeypatch.setattr(chart_readme, "README", readme)
    monkeypatch.setattr(chart_readme, "ROOT", tmp_path)
    assert chart_readme.main(["--check"]) == 1
    assert chart_readme.main([]) == 0  # regenerates
    assert "| `operator.replicas` | int | `3` |" in readme.read_text()
    assert chart_readme.main(["--check"]) == 0


def test_an_undocumented_value_is_refused() -> None:
    text = "# The image.\nimage: x\nnew: 1\n"
    with pytest.raises(chart_readme.UndocumentedError, match="new"):
        chart_readme.rows(text)


def test_marked_mapping_is_one_row_and_sections_are_descended() -> None:
    text = (
        "section:\n"
        "  # A leaf.\n"
        "  leaf: {a: 1}\n"
        "  # -- Whole | object.\n"
        "  whole:\n"
        "    inner: [1]\n"
        "  # After.\n"
        "  after: true\n"
    )
    rows = chart_readme.rows(text)
    assert [(r.key, r.type, r.default) for r in rows] == [
        ("section.leaf", "object", {"a": 1}),
        ("section.whole", "object", {"inner": [1]}),
        ("section.after", "bool", True),
    ]
    assert "Whole \\| object." in chart_readme.table(rows)


def test_a_comment_separated_by_a_blank_line_describes_nothing() -> None:
    with pytest.raises(chart_readme.UndocumentedError, match="key"):
        chart_readme.rows("# A header.\n\nkey: 1\n")
