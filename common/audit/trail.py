"""The structured audit log: the spec's AuditLog fields, as JSON lines via structlog."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from typing import Any

import structlog

_configured = False
# Where records go besides the structured log (the exporter to the artifact store).
_sinks: list[Callable[[dict[str, Any]], object]] = []


def configure(level: int = logging.INFO) -> None:
    """JSON lines on stdout, so any log shipper can keep them."""
    global _configured  # noqa: PLW0603 - configure structlog once per process
    if _configured:
        return
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True, key="logTime"),
            structlog.processors.JSONRenderer(sort_keys=True),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stdout),
        cache_logger_on_first_use=True,
    )
    _configured = True


def emit(entry: dict[str, Any]) -> None:
    """Write one audit record to the structured log, and hand it to each sink."""
    structlog.get_logger("ambient.audit").info("audit", audit=entry)
    for sink in _sinks:
        sink(entry)


def add_sink(sink: Callable[[dict[str, Any]], object]) -> None:
    """Also send every record to ``sink`` (which must not block: it buffers)."""
    _sinks.append(sink)


def clear_sinks() -> None:
    _sinks.clear()
