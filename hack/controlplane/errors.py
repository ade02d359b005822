"""The one failure type: a message that says what went wrong and what to do."""

from __future__ import annotations

from pathlib import Path


class ClusterError(Exception):
    """A failure worth a clear message; `log` names the file that explains it."""

    def __init__(self, message: str, log: Path | None = None) -> None:
        super().__init__(message)
        self.log = log
