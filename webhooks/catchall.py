"""The last line of the webhooks' HTTP servers: an unexpected error still gets an answer.

``CatchAll`` wraps an ASGI app. An exception the app did not turn into an answer is
reported to ``on_error`` (which logs it with its stack trace, counts it and audits it)
and answered 500 in the documented error shape, ``{error_code, message, details,
trace_id, timestamp}``, with ``X-Trace-Id``: never Starlette's plain-text page, never a
stack trace in the answer.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger(__name__)
INTERNAL_ERROR = "InternalError"


def error_shape(
    code: str, message: str, trace_id: str, details: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The documented error body of both servers."""
    return {
        "error_code": code,
        "message": message,
        "details": details or {},
        "trace_id": trace_id,
        "timestamp": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
    }


def internal_error_body(trace_id: str) -> bytes:
    """The answer to an unexpected error: what to do, and the trace id the log has."""
    return json.dumps(
        error_shape(
            INTERNAL_ERROR,
            "the server failed to handle this request; it is logged under this trace id, "
            "and a retry may succeed",
            trace_id,
        )
    ).encode()


async def send_internal_error(send: Send, trace_id: str) -> None:
    """A complete 500 answer in the error shape."""
    body = internal_error_body(trace_id)
    await send(
        {
            "type": "http.response.start",
            "status": 500,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"x-trace-id", trace_id.encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class CatchAll:
    """ASGI middleware: any exception out of ``app`` → ``on_error`` and a 500 in the shape."""

    def __init__(self, app: ASGIApp, on_error: Callable[[Scope, Exception, str], None]) -> None:
        self.app = app
        self.on_error = on_error

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        except Exception as exc:
            trace = uuid.uuid4().hex
            try:
                self.on_error(scope, exc, trace)
            except Exception:  # reporting must not stop the answer
                log.exception("error %s could not be reported", trace)
            if not started:  # else the answer is on its way; the server closes it
                await send_internal_error(send, trace)
