"""Progress goes to stderr; stdout carries only what callers capture (paths, status)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

LOG_TAIL_LINES = 25


def step(message: str) -> None:
    """Progress goes to stderr, so `$(cluster.py up)` captures only the kubeconfig path."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def result(line: object) -> None:
    """A line for the caller to capture (the kubeconfig path, a binary path, status)."""
    print(line)


def tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    """The end of a log, which is where a crashing component says why."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return f"(no log at {path})"
    return "\n".join(text.splitlines()[-lines:])
