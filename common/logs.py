"""Every component's log lines as JSON (or text for local work), through structlog.

All of the process's standard-library loggers (ours, kopf's, uvicorn's) go through one
handler on the root logger whose ``structlog.stdlib.ProcessorFormatter`` adds the time
(UTC, ISO 8601), the level, the logger's name, the component, whatever is bound in the
current context (``bind``: the delivery's ``trace_id``, the Session being reconciled) and,
for kopf's per-object lines, the object they are about. Audit records keep their own
stream (``common.audit.trail``).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from enum import StrEnum
from typing import Any

import structlog

RAW_LOGGERS = ("ambient.ingress.audit",)
"""Loggers whose messages are already whole JSON records (audit records): written as they
are, one a line on stdout, never wrapped in a log line."""
TRACE_ID = "trace_id"
"""The key that carries a delivery's trace id from the ingress to the operator's lines."""


class Format(StrEnum):
    JSON = "json"
    TEXT = "text"


def _kopf_object(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """kopf's per-object lines carry the object in the record's ``k8s_ref``."""
    record = event.get("_record")
    ref = getattr(record, "k8s_ref", None) if record is not None else None
    if isinstance(ref, dict) and ref.get("name"):
        event.setdefault("object", f"{ref.get('namespace') or ''}/{ref['name']}".lstrip("/"))
        event.setdefault("kind", ref.get("kind"))
    return event


def configure(component: str, fmt: Format | str = Format.JSON, level: int | str = "INFO") -> None:
    """One handler on the root logger, replacing any; call once at start-up."""

    def add_component(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
        event.setdefault("component", component)
        return event

    renderer: Any = (
        structlog.processors.JSONRenderer(sort_keys=True)
        if Format(fmt) is Format.JSON
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[
            structlog.contextvars.merge_contextvars,
            structlog.stdlib.add_log_level,
            structlog.stdlib.add_logger_name,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _kopf_object,
            add_component,
        ],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            renderer,
        ],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level if isinstance(level, int) else level.upper())
    for name in RAW_LOGGERS:
        raw = logging.StreamHandler(sys.stdout)
        raw.setFormatter(logging.Formatter("%(message)s"))
        audit = logging.getLogger(name)
        audit.handlers[:] = [raw]
        audit.propagate = False


def bind(**values: Any) -> None:
    """Add keys to every line logged from now on in this context (task, request)."""
    structlog.contextvars.bind_contextvars(**values)


@contextmanager
def bound(**values: Any) -> Iterator[None]:
    """Add keys to the lines logged inside the block."""
    with structlog.contextvars.bound_contextvars(**values):
        yield
