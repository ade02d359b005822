"""The ingress's HTTP surface: FastAPI routes over an ``IngressHandler``. HTTP only.

The routes take the key from the path or ``Authorization: Bearer``, hand the source, the
key, the headers and the body stream to the handler, and write its ``Reply`` back. Health,
readiness, metrics, the error shape of every non-2xx answer and the OpenAPI document live
here; what a delivery does lives in ``handler`` and ``pipeline``.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from ambient.webhooks.catchall import CatchAll

from .errors import ErrorBody, IngressError, error_body
from .handler import IngressHandler


class Accepted(BaseModel):
    """A Session was stored (202) or already existed for this delivery (200)."""

    namespace: str
    session: str


RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "a repeated delivery, a ping, a challenge or an ignored event"},
    **{code: {"model": ErrorBody} for code in (401, 403, 404, 409, 413, 415, 422, 429, 500, 503)},
}

BODY_DOC: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "The sender's payload, exactly as sent (it is signed).",
        "content": {
            "application/json": {"schema": {"type": "object"}},
            "application/x-www-form-urlencoded": {"schema": {"type": "object"}},
        },
    }
}


def _fail(exc: IngressError) -> JSONResponse:
    trace = uuid.uuid4().hex
    return JSONResponse(
        error_body(exc.code, exc.message, trace, exc.details),
        status_code=exc.status,
        headers={**exc.headers, "X-Trace-Id": trace},
    )


def make_app(
    handler: IngressHandler,
    lifespan: Callable[[FastAPI], AbstractAsyncContextManager[None]] | None = None,
) -> FastAPI:
    """The FastAPI app serving ``handler``."""
    app = FastAPI(
        title="ambient webhook ingress",
        version="v1alpha1",
        description=(
            "GitHub, Jira, Slack, Alertmanager (payload version 4) and generic Standard "
            "Webhooks events become Sessions in the key's namespace."
        ),
        lifespan=lifespan,
    )

    app.state.handler = handler
    # Outermost but for Starlette's own: whatever the handlers below leave unanswered.
    app.add_middleware(
        CatchAll,
        on_error=lambda scope, exc, trace: handler.http_error(
            str(scope.get("path", "")), exc, trace
        ),
    )

    @app.exception_handler(IngressError)
    async def _ingress_error(_: Request, exc: IngressError) -> JSONResponse:
        return _fail(exc)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "NotFound", 405: "MethodNotAllowed"}.get(exc.status_code, "HTTPError")
        return _fail(IngressError(exc.status_code, code, str(exc.detail)))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        return _fail(
            IngressError(
                422,
                "InvalidRequest",
                "the request is malformed",
                {"errors": [str(e.get("msg")) for e in exc.errors()]},
            )
        )

    @app.get("/healthz", tags=["health"])
    async def healthz() -> dict[str, str]:
        """Alive."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"], responses={503: {"model": ErrorBody}})
    async def readyz() -> dict[str, str]:
        """Ready once the key index has synced from the NamespacePolicies."""
        if not handler.ready:
            raise IngressError(503, "NotReady", "the key index has not synced yet")
        return {"status": "ready"}

    @app.get("/metrics", tags=["health"], response_class=Response)
    async def metrics() -> Response:
        """Prometheus metrics."""
        return Response(generate_latest(handler.registry), media_type=CONTENT_TYPE_LATEST)

    @app.post(
        "/webhooks/{source}/{key}",
        status_code=202,
        responses=RESPONSES,
        tags=["webhooks"],
        response_model=Accepted,
        openapi_extra=BODY_DOC,
    )
    async def deliver_with_path_key(request: Request, source: str, key: str) -> Response:
        """A delivery with the key in the path (GitHub, Jira and Slack cannot set headers).
        ``source``: github, jira, slack, alertmanager or generic."""
        reply = await handler.handle(source, key, request.headers, request.stream())
        return JSONResponse(reply.body, status_code=reply.status, headers=reply.headers)

    @app.post(
        "/webhooks/{source}",
        status_code=202,
        responses=RESPONSES,
        tags=["webhooks"],
        response_model=Accepted,
        openapi_extra=BODY_DOC,
    )
    async def deliver_with_bearer(request: Request, source: str) -> Response:
        """A delivery with Authorization: Bearer <key> (what Alertmanager's
        ``http_config.authorization`` sends)."""
        auth = request.headers.get("authorization", "")
        scheme, _, token = auth.partition(" ")
        key = token.strip() if scheme.lower() == "bearer" else None
        reply = await handler.handle(source, key, request.headers, request.stream())
        return JSONResponse(reply.body, status_code=reply.status, headers=reply.headers)

    return app
