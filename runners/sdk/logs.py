"""The runner's log lines as JSON on stderr, with the Session and the trace id of the
delivery that started it (``AMBIENT_TRACE_ID``, set by the operator from the Session's
``ambient.ai/trace-id``), the same keys the platform's components log (common/logs.py).

The standard library only: a runner image carries its framework and little else.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from datetime import UTC, datetime

TRACE_ENV = "AMBIENT_TRACE_ID"


class JsonFormatter(logging.Formatter):
    """One JSON object a line: timestamp, level, logger, component, event, session,
    trace_id, and the exception when there is one."""

    def __init__(self, fixed: dict[str, str]) -> None:
        super().__init__()
        self.fixed = fixed

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, str] = {
            "timestamp": datetime.fromtimestamp(record.created, UTC)
            .isoformat()
            .replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
            **self.fixed,
        }
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, sort_keys=True)


def configure(environ: dict[str, str] | None = None) -> None:
    """Every logger of the runner's process through one JSON handler on stderr
    (AMBIENT_LOG_FORMAT=text keeps plain lines for local work)."""
    env = dict(os.environ if environ is None else environ)
    fixed = {"component": "runner"}
    if env.get("AMBIENT_SESSION_NAME"):
        fixed["session"] = (
            f"{env.get('AMBIENT_SESSION_NAMESPACE', '')}/{env['AMBIENT_SESSION_NAME']}"
        )
    if env.get(TRACE_ENV):
        fixed["trace_id"] = env[TRACE_ENV]
    handler = logging.StreamHandler(sys.stderr)
    if env.get("AMBIENT_LOG_FORMAT") == "text":
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    else:
        handler.setFormatter(JsonFormatter(fixed))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
