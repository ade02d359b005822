"""The FastAPI adapter: authenticate, verify, parse, decide, create, answer, audit.

Order matters for safety: the key decides the namespace before the body is read; the
signature is checked before the body is parsed; nothing answers 2xx until the Session is
stored (invariant 1, 2 and 5 of ARCHITECTURE.md).
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from ambient.common.store.s3 import ContentConflictError, StoreUnavailableError

from . import events, pipeline
from .errors import ErrorBody, IngressError, KubeRefusedError, KubeUnavailableError, error_body
from .keyindex import KeyIndex, Tenant, key_hash
from .ratelimit import RateLimiter, retry_after
from .settings import Settings
from .signatures import VERIFIERS, SignatureError

if TYPE_CHECKING:
    from .delivery_log import DeliveryLog

audit_log = logging.getLogger("ambient.ingress.audit")
log = logging.getLogger("ambient.ingress")


class Backend(Protocol):
    """What the app needs from Kubernetes (sessions_api.AsyncSessionsApi, or a fake in unit tests).
    Methods may be coroutines (awaited on the loop) or plain functions (run in threads)."""

    def create_session(
        self, manifest: dict[str, Any]
    ) -> dict[str, Any] | Awaitable[dict[str, Any] | None] | None: ...

    def signing_secret(
        self, namespace: str, secret: str, source: str
    ) -> str | Awaitable[str | None] | None: ...


class PayloadStore(Protocol):
    """Where payloads too large for the Session go (objectstore.S3Store)."""

    def put_once(self, key: str, body: bytes) -> bool: ...

    def location(self, key: str) -> str: ...


class Accepted(BaseModel):
    """A Session was stored (202) or already existed for this delivery (200)."""

    namespace: str
    session: str


class Ignored(BaseModel):
    """The delivery was authenticated but starts no Session."""

    status: str = "ignored"
    reason: str


@dataclass
class Audit:
    """The spec's WebhookEvent: one per delivery, never keys or secrets."""

    source: str
    trace_id: str
    event: str = ""
    delivery_id: str = ""
    namespace: str = ""
    session: str = ""
    outcome: str = ""
    reason: str = ""
    status: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def emit(self) -> None:
        record = {
            "kind": "WebhookEvent",
            **{k: v for k, v in self.__dict__.items() if k != "extra"},
        }
        audit_log.info(json.dumps(record, sort_keys=True))


def create_app(  # noqa: PLR0915 - one factory closing over the app's handlers
    index: KeyIndex,
    backend: Backend,
    *,
    settings: Settings | None = None,
    clock: Callable[[], float] = time.monotonic,
    lifespan_hook: Callable[[], Any] | None = None,
    executor: ThreadPoolExecutor | None = None,
    delivery_log: DeliveryLog | None = None,
    store: PayloadStore | None = None,
    store_prefix: str = "",
) -> FastAPI:
    """The ingress app around a key index and a Kubernetes backend (injected for tests),
    and the artifact store that takes payloads too large for the Session (optional)."""
    cfg = settings or Settings()
    body_limit = cfg.max_stored_body_bytes if store is not None else cfg.max_body_bytes
    # Bodies above the in-object limit (up to 25 MiB each, parsed in memory) are taken a
    # few at a time; the others wait for a slot, within the request timeout.
    large_slots = asyncio.Semaphore(cfg.max_large_deliveries)
    limiter = RateLimiter(cfg.rate_per_second, cfg.rate_burst)
    pool = executor or ThreadPoolExecutor(cfg.api_connections, thread_name_prefix="kube")
    registry = CollectorRegistry()
    deliveries = Counter(
        "ambient_ingress_deliveries_total",
        "Deliveries by source and outcome",
        ["source", "outcome"],
        registry=registry,
    )
    latency = Histogram(
        "ambient_ingress_delivery_duration_seconds",
        "Time to answer a delivery",
        ["source"],
        registry=registry,
        buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
    )
    if delivery_log is not None:
        delivery_log.register(registry)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if lifespan_hook is not None:
            lifespan_hook()
        yield
        pool.shutdown(wait=False)
        close = getattr(backend, "aclose", None)
        if close is not None:
            await close()

    app = FastAPI(
        title="ambient webhook ingress",
        version="v1alpha1",
        description="GitHub, Jira and Slack events become Sessions in the key's namespace.",
        lifespan=lifespan,
    )

    def fail(request: Request, exc: IngressError) -> JSONResponse:
        trace = getattr(request.state, "trace_id", None) or uuid.uuid4().hex
        return JSONResponse(
            error_body(exc.code, exc.message, trace, exc.details),
            status_code=exc.status,
            headers={**exc.headers, "X-Trace-Id": trace},
        )

    @app.exception_handler(IngressError)
    async def _ingress_error(request: Request, exc: IngressError) -> JSONResponse:
        return fail(request, exc)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "NotFound", 405: "MethodNotAllowed"}.get(exc.status_code, "HTTPError")
        return fail(request, IngressError(exc.status_code, code, str(exc.detail)))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        return fail(
            request,
            IngressError(
                422,
                "InvalidRequest",
                "the request is malformed",
                {"errors": [str(e.get("msg")) for e in exc.errors()]},
            ),
        )

    @app.get("/healthz", tags=["health"])
    async def healthz() -> dict[str, str]:
        """Alive."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"], responses={503: {"model": ErrorBody}})
    async def readyz(request: Request) -> dict[str, str]:
        """Ready once the key index has synced from the NamespacePolicies."""
        if not index.synced:
            raise IngressError(503, "NotReady", "the key index has not synced yet")
        return {"status": "ready"}

    @app.get("/metrics", tags=["health"], response_class=Response)
    async def metrics() -> Response:
        """Prometheus metrics."""
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    responses: dict[int | str, dict[str, Any]] = {
        200: {"description": "a repeated delivery, a ping, a challenge or an ignored event"},
        **{code: {"model": ErrorBody} for code in (401, 403, 404, 409, 413, 415, 422, 429, 503)},
    }

    body_doc: dict[str, Any] = {
        "requestBody": {
            "required": True,
            "description": "The sender's payload, exactly as sent (it is signed).",
            "content": {
                "application/json": {"schema": {"type": "object"}},
                "application/x-www-form-urlencoded": {"schema": {"type": "object"}},
            },
        }
    }

    async def handle(request: Request, source: str, key: str | None) -> Response:
        start = clock()
        trace = uuid.uuid4().hex
        request.state.trace_id = trace
        audit = Audit(source=source, trace_id=trace)
        try:
            result = await asyncio.wait_for(
                _deliver(request, source, key, audit), cfg.request_timeout_seconds
            )
            audit.outcome = audit.outcome or "accepted"
        except TimeoutError:
            audit.outcome, audit.reason, audit.status = "error", "timeout", 503
            result = fail(
                request, IngressError(503, "Timeout", "the delivery took too long; retry it")
            )
        except IngressError as exc:
            audit.outcome = audit.outcome or "refused"
            audit.reason = audit.reason or exc.code
            audit.status = exc.status
            result = fail(request, exc)
        finally:
            if getattr(request.state, "large_slot", False):
                large_slots.release()
        audit.status = result.status_code
        result.headers["X-Trace-Id"] = trace
        deliveries.labels(source if source in events.SOURCES else "unknown", audit.outcome).inc()
        latency.labels(source if source in events.SOURCES else "unknown").observe(clock() - start)
        if delivery_log is not None:  # the delivery log: exported record, request kept for replay
            await delivery_log.record(audit, pool)
        audit.emit()
        return result

    async def _read_body(request: Request) -> bytes:
        declared = request.headers.get("content-length")
        if store is not None:
            too_big = IngressError(
                413,
                "PayloadTooLarge",
                f"the body is larger than {body_limit} bytes, the most the ingress takes",
                {"limit": body_limit},
            )
        else:
            too_big = IngressError(
                413,
                "PayloadTooLarge",
                f"the body is larger than {body_limit} bytes, the most kept inside a "
                "Session; larger payloads need an artifact store (AMBIENT_STORE_BUCKET)",
                {"limit": body_limit},
            )
        if declared is not None:
            try:
                length = int(declared)
            except ValueError as exc:
                raise IngressError(
                    400, "BadContentLength", "Content-Length is not a number"
                ) from exc
            if length > body_limit:
                raise too_big
            if length > cfg.max_body_bytes:
                await _large_slot(request)
        chunks = bytearray()
        async for chunk in request.stream():
            chunks += chunk
            if len(chunks) > body_limit:
                raise too_big
            if len(chunks) > cfg.max_body_bytes:
                await _large_slot(request)
        return bytes(chunks)

    async def _large_slot(request: Request) -> None:
        if not getattr(request.state, "large_slot", False):
            await large_slots.acquire()
            request.state.large_slot = True

    async def _deliver(request: Request, source: str, key: str | None, audit: Audit) -> Response:
        if source not in events.SOURCES:
            raise IngressError(404, "UnknownSource", "source must be github, jira or slack")
        if not key:
            raise IngressError(
                401, "MissingKey", "put the key in the path or send Authorization: Bearer <key>"
            )
        tenant = index.lookup(source, key)
        if tenant is None:
            raise IngressError(
                401,
                "UnknownKey",
                f"this key is not valid for {source}; an admin creates one with "
                "python -m ambient.webhooks.keys create",
            )
        audit.namespace = tenant.namespace
        wait = limiter.take(f"{source}:{key_hash(key)}", clock())
        if wait > 0:
            audit.outcome = "throttled"
            raise IngressError(
                429,
                "RateLimited",
                "too many deliveries for this key; retry later",
                headers={"Retry-After": retry_after(wait)},
            )
        content_type = request.headers.get("content-type")
        if events.media_type(content_type) not in (events.JSON, events.FORM):
            raise IngressError(
                415,
                "UnsupportedMediaType",
                "send application/json (Slack slash commands and interactivity: "
                "application/x-www-form-urlencoded)",
            )
        body = await _read_body(request)
        headers = {k.lower(): v for k, v in request.headers.items()}
        audit.extra.update(body=body, headers=headers)  # for the delivery log, never logged
        await _verify(tenant, source, body, headers)
        try:
            decision = pipeline.decide(tenant, source, headers, body, content_type)
        except events.MediaTypeError as exc:
            raise IngressError(415, "UnsupportedMediaType", str(exc)) from exc
        except events.MalformedError as exc:
            raise IngressError(422, "MalformedPayload", str(exc)) from exc
        delivery = decision.delivery
        audit.event, audit.delivery_id = delivery.event, delivery.delivery_id
        if delivery.kind == "ping":
            audit.outcome = "ping"
            return JSONResponse({"status": "pong"}, status_code=200)
        if delivery.kind == "challenge":
            audit.outcome = "challenge"
            return JSONResponse({"challenge": delivery.challenge}, status_code=200)
        if decision.ignored is not None:
            audit.outcome, audit.reason = "ignored", decision.ignored
            return JSONResponse(Ignored(reason=decision.ignored).model_dump(), status_code=200)
        manifest = decision.manifest
        assert manifest is not None  # a Session delivery the policy selects
        name = manifest["metadata"]["name"]
        audit.session = name
        if len(body) > cfg.max_body_bytes:
            # Too large for the object: the raw body goes to the store first (create-only,
            # at the delivery's key), then the Session references it.
            await _offload(manifest, body, tenant.namespace, delivery)
        existing = await _call(backend.create_session, manifest)
        body_out = Accepted(namespace=tenant.namespace, session=name).model_dump()
        if existing is None:
            audit.outcome = "created"
            return JSONResponse(body_out, status_code=202)
        if not events.is_same_delivery(existing, delivery):
            audit.outcome = "conflict"
            raise IngressError(
                409, "NameTaken", f"Session {name} exists but was not created for this delivery"
            )
        audit.outcome = "duplicate"
        return JSONResponse(body_out, status_code=200)

    async def _offload(
        manifest: dict[str, Any],
        body: bytes,
        namespace: str,
        delivery: events.Delivery,
    ) -> None:
        assert store is not None  # the body limit keeps large bodies out without one
        key = events.payload_key(store_prefix, namespace, delivery.source, delivery.delivery_id)
        loop = asyncio.get_running_loop()
        try:
            # False when the same bytes were there already (a redelivery): fine.
            await loop.run_in_executor(pool, store.put_once, key, body)
        except ContentConflictError as exc:
            raise IngressError(
                409,
                "PayloadConflict",
                "a different payload was already stored for this delivery id",
                {"delivery_id": delivery.delivery_id},
            ) from exc
        except StoreUnavailableError as exc:
            log.warning("large payload not stored (%s): %s", key, exc.__cause__ or exc)
            raise IngressError(
                503,
                "StoreUnavailable",
                "the artifact store cannot be reached to keep this large payload; retry "
                "the delivery",
                headers={"Retry-After": "5"},
            ) from exc
        digest = hashlib.sha256(body).hexdigest()
        events.with_payload_ref(manifest, store.location(key), len(body), digest)

    async def _verify(tenant: Tenant, source: str, body: bytes, headers: dict[str, str]) -> None:
        secret = None
        if tenant.signing_secret:
            secret = await _call(
                backend.signing_secret, tenant.namespace, tenant.signing_secret, source
            )
        if secret is None:
            if getattr(tenant.ingress, source).allow_unsigned:
                return
            raise IngressError(
                403,
                "SigningSecretMissing",
                f"no {source} signing secret is set for this namespace: put it under data "
                f"key '{source}' of the Secret named by spec.webhookAuth.signingSecretRef, "
                f"or set spec.ingress.{source}.allowUnsigned",
            )
        try:
            VERIFIERS[source](body, headers, secret)
        except SignatureError as exc:
            raise IngressError(401, "InvalidSignature", str(exc)) from exc

    async def _call(fn: Callable[..., Any], *args: Any) -> Any:
        try:
            if inspect.iscoroutinefunction(fn):
                return await fn(*args)
            return await asyncio.get_running_loop().run_in_executor(pool, fn, *args)
        except KubeUnavailableError as exc:
            raise IngressError(
                503, "ApiUnavailable", f"{exc}; retry the delivery", headers={"Retry-After": "5"}
            ) from exc
        except KubeRefusedError as exc:
            status = exc.status if exc.status in (403, 413, 422) else 403
            raise IngressError(status, "RefusedByApiServer", exc.message) from exc

    @app.post(
        "/webhooks/{source}/{key}",
        status_code=202,
        responses=responses,
        tags=["webhooks"],
        response_model=Accepted,
        openapi_extra=body_doc,
    )
    async def deliver_with_path_key(request: Request, source: str, key: str) -> Response:
        """A delivery with the key in the path (GitHub, Jira and Slack cannot set headers)."""
        return await handle(request, source, key)

    @app.post(
        "/webhooks/{source}",
        status_code=202,
        responses=responses,
        tags=["webhooks"],
        response_model=Accepted,
        openapi_extra=body_doc,
    )
    async def deliver_with_bearer(request: Request, source: str) -> Response:
        """A delivery with Authorization: Bearer <key>."""
        auth = request.headers.get("authorization", "")
        scheme, _, token = auth.partition(" ")
        return await handle(request, source, token.strip() if scheme.lower() == "bearer" else None)

    return app
