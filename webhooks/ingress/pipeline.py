"""The pipeline a delivery runs once its key named the namespace: verify, decide, offload,
create. Written once, run by the ingress (``handler.IngressHandler``) and by an admin's
replay (``webhooks/cli/deliveries.py``).

It talks only through what it is given: the session creator (the Kubernetes backend,
which reads signing Secrets and creates Sessions) and the store that takes payloads too
large for a Session. What to do at each step is decided in ``rules``. Every refusal is an
IngressError with a stable code; the caller turns it into an answer. Nothing is created
before the signature holds, and a large payload is stored before the Session that
references it (invariants 1, 2 and 5 of docs/architecture.md).
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from ambient.common.store import keys
from ambient.common.store.s3 import ContentConflictError, StoreUnavailableError
from ambient.crds import naming
from ambient.crds.digests import sha256_hex
from ambient.crds.naming import InvalidNameError

from . import events, rules
from .errors import IngressError, KubeRefusedError, KubeUnavailableError
from .keyindex import Tenant
from .signatures import KEY_ONLY

audit_log = logging.getLogger("ambient.ingress.audit")
log = logging.getLogger("ambient.ingress")


class SessionCreator(Protocol):
    """What the pipeline needs from Kubernetes (sessions_api.AsyncSessionsApi in the ingress,
    sessions_api.SessionsApi in a replay, a fake in unit tests). Methods may be coroutines
    (awaited on the loop) or plain functions (run in the executor)."""

    def create_session(
        self, manifest: dict[str, Any]
    ) -> dict[str, Any] | Awaitable[dict[str, Any] | None] | None: ...

    def signing_secret(
        self, namespace: str, secret: str, source: str
    ) -> str | Awaitable[str | None] | None: ...


class PayloadStore(Protocol):
    """Where payloads too large for the Session go (common.store.s3.S3Store)."""

    def put_once(self, key: str, body: bytes) -> bool: ...

    def location(self, key: str) -> str: ...


@dataclass
class Audit:
    """The spec's WebhookEvent: one per delivery, never keys or secrets. The pipeline
    fills in what it learns as it goes, so a refusal half-way still says how far it got."""

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


Outcome = Literal["ping", "challenge", "ignored", "created", "duplicate"]


@dataclass(frozen=True)
class Result:
    """How a delivery that was not refused ended."""

    outcome: Outcome
    decision: rules.DeliveryDecision


def offload_payload(
    store: PayloadStore,
    store_prefix: str,
    manifest: dict[str, Any],
    body: bytes,
    delivery: events.Delivery,
) -> None:
    """The raw body goes to the store (create-only, at the delivery's key), then the
    manifest references it. Blocking: the pipeline runs it in its executor."""
    namespace = manifest["metadata"]["namespace"]
    # By content for GitHub and Jira (as their Session name is): a replay under a new
    # delivery id finds the object stored before instead of storing another copy.
    ident = delivery.body_sha256 if delivery.source in events.BODY_NAMED else ""
    key = keys.payload_key(store_prefix, namespace, delivery.source, ident or delivery.delivery_id)
    try:
        # False when the same bytes were there already (a redelivery): fine.
        store.put_once(key, body)
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
            "the artifact store cannot be reached to keep this large payload; retry the delivery",
            headers={"Retry-After": "5"},
        ) from exc
    digest = sha256_hex(body)
    events.with_payload_ref(manifest, store.location(key), len(body), digest)


class Pipeline:
    """verify → decide → offload → create, for one delivery whose tenant is known."""

    def __init__(
        self,
        creator: SessionCreator,
        *,
        inline_limit: int,
        store: PayloadStore | None = None,
        store_prefix: str = "",
        executor: Executor | None = None,
    ) -> None:
        self.creator = creator
        self.inline_limit = inline_limit
        """Largest body kept inside the Session; larger ones go to ``store``."""
        self.store = store
        self.store_prefix = store_prefix
        self.executor = executor

    async def run(
        self,
        tenant: Tenant,
        source: str,
        headers: Mapping[str, str],
        body: bytes,
        audit: Audit,
        *,
        signed_at: float | None = None,
        annotations: Mapping[str, str] | None = None,
    ) -> Result:
        """Run ``body`` through the pipeline in ``tenant``'s namespace; raises IngressError
        for a refusal. ``headers`` with lower-case names; ``signed_at``: see rules.verify;
        ``annotations`` replace the built Session's (a replay names who replayed it)."""
        secret = None
        if tenant.signing_secret and source not in KEY_ONLY:
            try:
                secret = await self.call(
                    self.creator.signing_secret, tenant.namespace, tenant.signing_secret, source
                )
            except InvalidNameError as exc:
                # A policy stored before the schema checked the name: no Secret is read
                # and nothing is verified with one (fail closed).
                raise IngressError(
                    403,
                    "InvalidSigningSecretRef",
                    f"{exc}; fix spec.webhookAuth.signingSecretRef.name",
                ) from exc
        rules.verify(tenant, source, body, headers, secret, signed_at=signed_at)
        content_type = headers.get("content-type")
        decision = rules.decide_or_refuse(tenant, source, headers, body, content_type)
        delivery = decision.delivery
        audit.event, audit.delivery_id = delivery.event, delivery.delivery_id
        if delivery.kind != "session":  # a ping or Slack's URL challenge
            audit.outcome = delivery.kind
            return Result(delivery.kind, decision)
        if decision.ignored is not None:
            audit.outcome, audit.reason = "ignored", decision.ignored
            return Result("ignored", decision)
        manifest = decision.manifest
        assert manifest is not None  # a Session delivery the policy selects
        if annotations is not None:
            manifest["metadata"]["annotations"] = dict(annotations)
        # The delivery's trace id follows the Session into the operator's log lines.
        manifest["metadata"].setdefault("annotations", {})[naming.ANNOTATION_TRACE_ID] = (
            audit.trace_id
        )
        name = manifest["metadata"]["name"]
        audit.session = name
        if len(body) > self.inline_limit:
            assert self.store is not None  # the body limit keeps large bodies out without one
            await asyncio.get_running_loop().run_in_executor(
                self.executor,
                offload_payload,
                self.store,
                self.store_prefix,
                manifest,
                body,
                delivery,
            )
        existing = await self.call(self.creator.create_session, manifest)
        outcome = rules.settle(existing, delivery)
        audit.outcome = outcome
        if existing is not None and events.is_replayed_body(existing, delivery):
            # The same signed body under a new delivery id: answered as the repeat it is,
            # and recorded as such (finding 5 of issue 17).
            audit.reason = "ReplayedBody"
            log.warning(
                "delivery %s repeats the body of Session %s/%s under a new delivery id",
                audit.trace_id,
                tenant.namespace,
                name,
            )
        if outcome == "conflict":
            raise IngressError(
                409, "NameTaken", f"Session {name} exists but was not created for this delivery"
            )
        return Result(outcome, decision)

    async def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn`` awaited, or run in the executor; API errors become IngressErrors (503
        to retry, or the API server's refusal)."""
        try:
            if inspect.iscoroutinefunction(fn):
                return await fn(*args)
            return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)
        except KubeUnavailableError as exc:
            raise IngressError(
                503, "ApiUnavailable", f"{exc}; retry the delivery", headers={"Retry-After": "5"}
            ) from exc
        except KubeRefusedError as exc:
            status = exc.status if exc.status in (403, 413, 422) else 403
            raise IngressError(status, "RefusedByApiServer", exc.message) from exc
