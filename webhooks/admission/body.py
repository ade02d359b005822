"""Reading a request body under a size limit, on plain ASGI (talks: it receives and sends).

The limit holds before and during the read: a declared Content-Length over it is refused
without reading, and a body sent without one (chunked) or with a false one is refused at
the first chunk that passes it, so memory held per request never exceeds the limit.
"""

from __future__ import annotations

import json
import uuid

from starlette.types import Message, Receive, Scope, Send

from ambient.webhooks.catchall import error_shape

PAYLOAD_TOO_LARGE = "PayloadTooLarge"


class BodyTooLargeError(Exception):
    """The body is (or says it is) larger than the limit."""

    def __init__(self, limit: int, declared: int | None) -> None:
        self.limit = limit
        self.declared = declared
        super().__init__(f"request body over {limit} bytes")


def declared_length(scope: Scope) -> int | None:
    """The Content-Length header, or None when absent or not a number."""
    for name, value in scope.get("headers") or ():
        if name.lower() == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def read_body(scope: Scope, receive: Receive, limit: int) -> bytes | None:
    """The whole body, at most ``limit`` bytes; None when the client disconnected.
    Raises BodyTooLargeError as soon as the body is known to pass the limit."""
    declared = declared_length(scope)
    if declared is not None and declared > limit:
        raise BodyTooLargeError(limit, declared)
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLargeError(limit, declared)
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def replay(body: bytes) -> Receive:
    """A ``receive`` that hands an app the body already read, then a disconnect."""
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return receive


async def send_too_large(send: Send, error: BodyTooLargeError) -> None:
    """413 in the error shape; the connection is closed, so the rest is never read."""
    trace = uuid.uuid4().hex
    body = json.dumps(
        error_shape(
            PAYLOAD_TOO_LARGE,
            f"the request body is larger than {error.limit} bytes; an AdmissionReview from "
            "the API server never is",
            trace,
            {"limit": error.limit, "declared": error.declared},
        )
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
                (b"x-trace-id", trace.encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
