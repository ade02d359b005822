"""The one error taxonomy of the Kubernetes access layer: what every client here raises.

Callers decide on the class, never on a library's exception:

- ``RefusedError`` (4xx but 429): the request as made will not succeed; do not retry it.
  ``NotFoundError`` (404), ``ConflictError`` (409: exists already, or changed since read) and
  ``InvalidError`` (422) are the refusals callers branch on.
- ``UnavailableError`` (429, 5xx, or no answer at all: connection refused or dropped, timeout):
  retry later.

Each carries the HTTP ``status`` (0 when there was no answer), the Status object's
``reason`` (e.g. ``AlreadyExists``) and its ``message``. Pure: no I/O here.
"""

from __future__ import annotations

import json


class KubeError(Exception):
    """The API server did not do what was asked."""

    def __init__(
        self, status: int, message: str, reason: str = "", request: str = "", detail: str = ""
    ) -> None:
        # str() names the request and the server's own words when the caller gave the request
        # (operator logs), else the message alone (what the ingress may tell a sender).
        text = f"{request}: HTTP {status}: {detail or message}" if request else message
        super().__init__(text)
        self.status = status
        self.message = message
        self.reason = reason
        self.request = request


class RefusedError(KubeError):
    """A 4xx other than 429: the request as made will not succeed (admission denial, no
    permission, invalid or too large an object)."""


class NotFoundError(RefusedError):
    """404: the object (or its namespace, or its kind) does not exist."""


class ConflictError(RefusedError):
    """409: the object exists already (create) or changed since it was read (update)."""


class InvalidError(RefusedError):
    """422: the object fails the schema or a validation rule."""


class UnavailableError(KubeError):
    """No answer, 429 or 5xx: the API server cannot take the request now; retry later."""

    def __init__(
        self, message: str, status: int = 0, reason: str = "", request: str = "", detail: str = ""
    ) -> None:
        super().__init__(status, message, reason, request, detail)


_BY_STATUS: dict[int, type[RefusedError]] = {
    404: NotFoundError,
    409: ConflictError,
    422: InvalidError,
}


def from_status(status: int, body: bytes, request: str = "") -> KubeError:
    """The error for a non-2xx answer, its message and reason read from the Status body."""
    try:
        decoded = json.loads(body) if body else {}
    except ValueError:
        decoded = None
    if isinstance(decoded, dict):
        message = str(decoded.get("message") or f"the API server answered {status}")
        reason = str(decoded.get("reason") or "")
    else:
        message = body[:200].decode("utf-8", "replace") or f"the API server answered {status}"
        reason = ""
    if status == 429 or status >= 500:
        # The server's words (e.g. an etcd error) stay out of the message senders are told.
        return UnavailableError(
            f"the API server answered {status}", status, reason, request, message
        )
    return _BY_STATUS.get(status, RefusedError)(status, message, reason, request)


def unreachable(exc: BaseException, request: str = "") -> UnavailableError:
    """The error for a request that got no answer (refused, reset, timed out)."""
    return UnavailableError(
        f"the API server cannot be reached: {type(exc).__name__}", 0, "", request
    )
