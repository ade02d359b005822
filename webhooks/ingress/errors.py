"""The error shape of every non-2xx answer: {error_code, message, details, trace_id, timestamp}."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, Field

from ambient.common.kube.errors import RefusedError, UnavailableError


class ErrorBody(BaseModel):
    """An error answer."""

    error_code: str = Field(examples=["InvalidSignature"])
    """Stable machine-readable code."""
    message: str
    """What went wrong and what to do."""
    details: dict[str, Any] = Field(default_factory=dict)
    """Extra facts (never keys or secrets)."""
    trace_id: str
    """Correlates the answer with the audit record."""
    timestamp: str
    """When the answer was made (RFC 3339, UTC)."""


class IngressError(Exception):
    """An answer other than success, decided anywhere in the request's handling."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details or {}
        self.headers = headers or {}


def error_body(
    code: str, message: str, trace_id: str, details: dict[str, Any] | None = None
) -> dict[str, Any]:
    return ErrorBody(
        error_code=code,
        message=message,
        details=details or {},
        trace_id=trace_id,
        timestamp=datetime.now(UTC).isoformat().replace("+00:00", "Z"),
    ).model_dump()


# The Kubernetes access layer's taxonomy (common/kube/errors.py), under the names the
# ingress decides on: unavailable is answered 503 (retry), refused passed on.
KubeUnavailableError = UnavailableError
KubeRefusedError = RefusedError
