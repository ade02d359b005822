"""The checkout itself: Python must start from the repository root.

A regular top-level ``operator`` package (an ``operator/__init__.py``) shadows the
standard library's ``operator`` whenever the root is on ``sys.path`` before start-up
(``PYTHONPATH=.``, as many shells and CI runners set it), and then not even
``python -m venv`` starts. CI once failed that way; docs/architecture.md says how the
folders are reached instead.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_python_started_in_the_checkout_gets_the_standard_library_operator() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "json.tool"],
        input="{}",
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "{}"


def test_every_top_level_folder_is_reached_through_the_ambient_namespace() -> None:
    for link in (ROOT / "ambient").iterdir():
        if link.name.startswith("__"):  # __init__.py, and __pycache__ once something ran
            continue
        assert link.is_symlink(), f"ambient/{link.name} should link to a top-level folder"
        assert link.resolve() == ROOT / link.name
