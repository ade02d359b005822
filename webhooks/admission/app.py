"""The HTTPS admission server: AdmissionReview in, AdmissionReview out.

Fails closed everywhere: before the policy index has synced every request is denied, an
unknown path answers a denying review, and an error inside a decision denies it.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import orjson
import yaml
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from starlette.types import ASGIApp, Receive, Scope, Send

from ambient.common.audit import trail as audit
from ambient.common.audit.records import record as audit_record
from ambient.crds.models import NamespacePolicy
from ambient.runners import registry as runner_registry
from ambient.webhooks.admission import stamp
from ambient.webhooks.admission.body import BodyTooLargeError, read_body, replay, send_too_large
from ambient.webhooks.admission.policy_index import PolicyIndex
from ambient.webhooks.admission.registration import MUTATE_PATH, PATH
from ambient.webhooks.admission.review import Identities, State, Verdict, deny, review, user_of
from ambient.webhooks.admission.settings import AdmissionSettings
from ambient.webhooks.catchall import CatchAll, error_shape, send_internal_error
from ambient.webhooks.exporting import BackgroundExport

log = logging.getLogger(__name__)
NOT_A_REVIEW = "the body is not an AdmissionReview"


def _error(code: str, message: str) -> bytes:
    """A refusal outside a review in the documented error shape, with a trace id the log
    has too (issue 17, deliverable 3)."""
    trace = uuid.uuid4().hex
    log.warning("%s (trace %s)", message, trace)
    return orjson.dumps(error_shape(code, message, trace))


def load_default_policy(settings: AdmissionSettings) -> NamespacePolicy | None:
    if settings.default_policy_file is None:
        return None
    body = yaml.safe_load(settings.default_policy_file.read_text())
    return NamespacePolicy.model_validate(body)


_REASONS = {403: "Forbidden", 500: "InternalError"}


def response(uid: str, verdict: Verdict) -> dict[str, Any]:
    answer: dict[str, Any] = {"uid": uid, "allowed": verdict.allowed}
    if not verdict.allowed:
        answer["status"] = {
            "code": verdict.code,
            "reason": _REASONS.get(verdict.code, "Invalid"),
            "message": f"ambient.ai admission: {verdict.message}",
        }
    if verdict.warnings:
        answer["warnings"] = list(verdict.warnings)
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": answer}


class _Metrics:
    """The webhook's Prometheus metrics."""

    def __init__(self, export: BackgroundExport | None) -> None:
        self.registry = CollectorRegistry()
        self.latency = Histogram(
            "ambient_admission_duration_seconds",
            "Time to decide one AdmissionReview.",
            ["resource"],
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1),
            registry=self.registry,
        )
        self.decisions = Counter(
            "ambient_admission_decisions_total",
            "Admission decisions by resource and outcome.",
            ["resource", "outcome"],
            registry=self.registry,
        )
        self.stamps = Counter(
            "ambient_admission_stamp_reviews_total",
            "Reviews the mutating webhook answered, by outcome: stamped (a patch) or "
            "unchanged (it is called only when there is something to stamp).",
            ["outcome"],
            registry=self.registry,
        )
        self.errors = Counter(
            "ambient_admission_unexpected_errors_total",
            "Unexpected errors, by where: review (answered with a denying AdmissionReview) "
            "or http (answered 500 in the error shape).",
            ["where"],
            registry=self.registry,
        )
        if export is not None:  # decisions go to the store too (wired as an audit sink)
            export.on_written = Counter(
                "ambient_audit_records_exported_total",
                "Audit records written to the artifact store.",
                registry=self.registry,
            ).inc

    def http_error(self, scope: Scope, exc: Exception, trace: str) -> None:
        """An exception outside a review's own catch-all: logged and counted (the answer
        is a 500 in the error shape)."""
        method, path = scope.get("method", "?"), scope.get("path", "?")
        log.error(
            "%s %s failed (trace %s): %s", method, path, trace, type(exc).__name__, exc_info=exc
        )
        self.errors.labels("http").inc()


def _failed(body: dict[str, Any], exc: Exception, metrics: _Metrics, caller: str) -> dict[str, Any]:
    """The catch-all of a review: fail closed with a denial that says so and carries the
    trace id the log has; counted and audited as every decision is."""
    trace = uuid.uuid4().hex
    request = body.get("request")
    request = request if isinstance(request, dict) else {}
    uid = str(request.get("uid", ""))
    log.error("review %s failed (trace %s): %s", uid, trace, type(exc).__name__, exc_info=exc)
    metrics.errors.labels("review").inc()
    verdict = deny(
        _action_of(request),
        f"the webhook failed to evaluate this request (trace id {trace}); it is denied until "
        "it can be, retry it",
        code=500,
    )
    try:
        metrics.decisions.labels(_resource_of(request), "error").inc()
        _audit(request, verdict, outcome="error", trace_id=trace, caller=caller)
    except Exception:
        log.exception("review %s (trace %s) not audited", uid, trace)
    return response(uid, verdict)


def create_app(
    settings: AdmissionSettings,
    index: PolicyIndex,
    *,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    export: BackgroundExport | None = None,
) -> LeanValidate:
    registry = runner_registry.load(settings.registry_file)
    identities = Identities(settings.usernames, settings.groups)
    # Without client-certificate authentication anyone reaching the port can send a
    # review: its userInfo and namespace are claims, and every audit record says so.
    caller = "api-server-certificate" if settings.client_ca_file is not None else "unverified"
    default_policy = load_default_policy(settings)
    metrics = _Metrics(export)
    app = FastAPI(title="ambient.ai admission webhook", docs_url=None, redoc_url=None)

    def decide(body: dict[str, Any]) -> dict[str, Any]:
        try:
            return _decide(body)
        except Exception as exc:
            return _failed(body, exc, metrics, caller)

    def _decide(body: dict[str, Any]) -> dict[str, Any]:
        started = time.perf_counter()
        request = body.get("request") or {}
        uid = str(request.get("uid", ""))
        kind = (request.get("resource") or {}).get("resource", "?")
        action = f"{request.get('operation', '?')} {kind}"
        if not index.synced:
            verdict = deny(
                action, "the policy cache has not synced yet; try again in a moment", code=503
            )
        elif export is not None and export.backlogged:
            # Fail closed rather than buffer decisions without limit or lose them (issue
            # 17, finding 9): writes are refused until the audit store takes records again.
            verdict = deny(
                action,
                "the audit store has not taken records for a while; this write is refused "
                "until it does, retry it",
                code=503,
            )
        else:
            policies, owners = index.snapshot()
            state = State(
                policies,
                registry,
                identities,
                clock(),
                default_policy,
                owners,
                settings.signing_secrets,
            )
            verdict = review(request, state)
        resource = _resource_of(request)
        metrics.latency.labels(resource).observe(time.perf_counter() - started)
        metrics.decisions.labels(resource, "allowed" if verdict.allowed else "denied").inc()
        _audit(request, verdict, caller=caller)
        return response(uid, verdict)

    def mutate(body: dict[str, Any]) -> dict[str, Any]:
        request = body.get("request")
        request = request if isinstance(request, dict) else {}
        uid = str(request.get("uid", ""))
        try:
            ops = stamp.patch(request)
        except Exception as exc:
            return _failed(body, exc, metrics, caller)
        answer: dict[str, Any] = {"uid": uid, "allowed": True}
        metrics.stamps.labels("stamped" if ops else "unchanged").inc()
        if ops:
            answer["patchType"] = "JSONPatch"
            answer["patch"] = base64.b64encode(orjson.dumps(ops)).decode()
        return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": answer}

    @app.post(PATH)
    async def validate(http: Request) -> Response:
        """Served by ``LeanValidate`` in front of this app; here for the same answers
        when the app is mounted without it."""
        status, body = answer(decide, await http.body())
        return Response(body, status_code=status, media_type="application/json")

    _add_routes(app, index, metrics)

    # Inside Starlette's own error middleware, which would answer its plain-text 500 first.
    app.add_middleware(CatchAll, on_error=metrics.http_error)
    return LeanValidate(app, decide, metrics.http_error, settings.max_body_bytes, mutate)


def _add_routes(app: FastAPI, index: PolicyIndex, metrics: _Metrics) -> None:
    """Health, readiness, metrics, and the deny-all answer for unknown paths."""

    @app.get("/healthz")
    async def healthz() -> PlainTextResponse:
        return PlainTextResponse("ok")

    @app.get("/readyz")
    async def readyz() -> PlainTextResponse:
        if index.synced:
            return PlainTextResponse("ok")
        return PlainTextResponse("policy cache not synced", status_code=503)

    @app.get("/metrics")
    async def prometheus() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.post("/{path:path}")
    async def unknown(path: str, http: Request) -> Response:
        """A review sent anywhere else is denied, not ignored (a misconfigured path)."""
        try:
            body = json.loads(await http.body())
            uid = str((body.get("request") or {}).get("uid", ""))
        except (ValueError, AttributeError):
            return Response(
                _error("NotFound", f"unknown path /{path}"),
                status_code=404,
                media_type="application/json",
            )
        return JSONResponse(
            response(uid, deny(f"POST /{path}", f"unknown webhook path /{path}: deny"))
        )


def answer(decide: Callable[[dict[str, Any]], dict[str, Any]], body: bytes) -> tuple[int, bytes]:
    """(status, JSON body) for one POST /validate."""
    try:
        review_body = orjson.loads(body)
    except orjson.JSONDecodeError:
        review_body = None
    if not isinstance(review_body, dict):
        return 400, _error("NotAReview", NOT_A_REVIEW)
    return 200, orjson.dumps(decide(review_body))


class LeanValidate:
    """POST /validate straight on ASGI: the body read, parsed with orjson, decided and
    written back, without routing, a Request object or a response class. Everything else
    (health, readiness, metrics, the deny-all for unknown paths, lifespan) goes to the
    FastAPI app. The webhook sits in the path of every Session write, so its own overhead
    is what the API server waits for.

    Every POST body, on any path, is read here under ``max_body_bytes``: a larger declared
    Content-Length is refused before a byte is read, and a body that grows past the limit
    is refused as soon as it does, so no caller can make the webhook hold more."""

    def __init__(
        self,
        app: ASGIApp,
        decide: Callable[[dict[str, Any]], dict[str, Any]],
        on_error: Callable[[Scope, Exception, str], None] | None = None,
        max_body_bytes: int = 3 * 1024 * 1024,
        mutate: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    ) -> None:
        self.app = app
        self.decide = decide
        # POST /mutate: the creator and canceller stamps (see ``stamp``).
        self.routes = {PATH: decide, **({MUTATE_PATH: mutate} if mutate is not None else {})}
        self.on_error = on_error
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        try:
            request_body = await read_body(scope, receive, self.max_body_bytes)
        except BodyTooLargeError as exc:
            await send_too_large(send, exc)
            return
        if request_body is None:  # the caller went away
            return
        route = self.routes.get(scope["path"])
        if route is None:
            await self.app(scope, replay(request_body), send)
            return
        try:
            status, body = answer(route, request_body)
        except Exception as exc:
            # decide has its own catch-all; this is for what lies around it (the JSON).
            trace = uuid.uuid4().hex
            if self.on_error is not None:
                self.on_error(scope, exc, trace)
            await send_internal_error(send, trace)
            return
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def _action_of(request: dict[str, Any]) -> str:
    """What was asked, e.g. 'CREATE sessions', from a request that may be malformed."""
    resource = request.get("resource")
    kind = resource.get("resource", "?") if isinstance(resource, dict) else "?"
    return f"{request.get('operation', '?')} {kind}"


def _resource_of(request: dict[str, Any]) -> str:
    """The metrics' resource label: sessions, sessions/status, namespacepolicies, ..."""
    resource = (request.get("resource") or {}).get("resource", "unknown")
    if request.get("subResource"):
        resource = f"{resource}/{request['subResource']}"
    return str(resource)


def _audit(
    request: dict[str, Any],
    verdict: Verdict,
    *,
    outcome: str | None = None,
    trace_id: str | None = None,
    caller: str = "unverified",
) -> None:
    obj = request.get("object") or {}
    meta = obj.get("metadata") or {}
    resource = (request.get("resource") or {}).get("resource", "")
    name = request.get("name") or meta.get("name") or ""
    audit.emit(
        audit_record(
            namespace=str(request.get("namespace") or meta.get("namespace") or ""),
            session_id=str(meta.get("uid") or "") if resource == "sessions" else "",
            actor=user_of(request).username,
            action=f"admission {verdict.action}",
            resource=f"{resource}/{name}",
            outcome=outcome or ("allowed" if verdict.allowed else "denied"),
            details={
                "reasons": list(verdict.reasons),
                "dryRun": bool(request.get("dryRun")),
                # How the caller was authenticated: with "unverified", actor and namespace
                # are what the caller wrote, not what the API server established.
                "caller": caller,
            },
            trace_id=trace_id or str(request.get("uid") or uuid.uuid4()),
        )
    )


def start_policy_watch(index: PolicyIndex, kubeconfig: str | None = None) -> threading.Event:
    """The watch thread that keeps ``index`` current; set the returned event to stop it."""
    from ambient.common.kube.client import Kube  # noqa: PLC0415
    from ambient.webhooks.policy_watch import watch_policies  # noqa: PLC0415

    stop = threading.Event()
    thread = threading.Thread(
        target=watch_policies,
        args=(Kube(2, kubeconfig), index, stop),
        name="policy-watch",
        daemon=True,
    )
    thread.start()
    return stop
