"""What a delivery starts, decided: the pure steps of the pipeline. Pure.

The ingress and a replay run the same steps in the same order (``pipeline.Pipeline``):
the signature is checked with the namespace's signing secret (``verify``), the body is
parsed, pings and Slack's URL challenge start nothing, the namespace's routes (``routing``)
choose and render the Session, built with its deterministic name (``decide``), and a Session
that already had the name is this delivery's or a conflict (``settle``). Every refusal is
an ``IngressError`` with a stable code, so a rule added here holds for both.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from . import events, routing
from .errors import IngressError
from .keyindex import Tenant
from .signatures import KEY_ONLY, VERIFIERS, SignatureError, verify_generic, verify_slack


@dataclass(frozen=True)
class DeliveryDecision:
    """A parsed delivery and what it asks for: a Session (``manifest``), nothing because
    the policy does not select it (``ignored`` says why), or nothing at all (a ping or a
    challenge: ``delivery.kind`` says which)."""

    delivery: events.Delivery = field(repr=False)
    manifest: dict[str, Any] | None = None
    ignored: str | None = None


def verify(
    tenant: Tenant,
    source: str,
    body: bytes,
    headers: Mapping[str, str],
    secret: str | None,
    *,
    signed_at: float | None = None,
) -> None:
    """Raise IngressError unless the body is signed with ``secret`` (or the namespace
    allows ``source`` unsigned and has no secret for it). ``signed_at``: the time Slack's
    timestamp is checked against (a replay's time of receipt; default now). A source that
    signs nothing (Alertmanager) is authenticated by the key that named the tenant alone."""
    if source in KEY_ONLY:
        return
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
        if source == "slack" and signed_at is not None:
            verify_slack(body, headers, secret, clock=lambda: signed_at)
        elif source == "generic" and signed_at is not None:
            verify_generic(body, headers, secret, clock=lambda: signed_at)
        else:
            VERIFIERS[source](body, headers, secret)
    except SignatureError as exc:
        raise IngressError(401, "InvalidSignature", str(exc)) from exc


def decide(
    tenant: Tenant,
    source: str,
    headers: Mapping[str, str],
    body: bytes,
    content_type: str | None,
) -> DeliveryDecision:
    """Decide what a request, already verified, starts in ``tenant``'s namespace.

    Raises events.MediaTypeError or events.MalformedError for a body that cannot be read.
    """
    delivery = events.parse(source, headers, body, content_type)
    if delivery.kind != "session":
        return DeliveryDecision(delivery)
    routed = routing.decide(
        delivery,
        headers,
        namespace=tenant.namespace,
        ingress=tenant.ingress,
        defaults=tenant.defaults,
        table=tenant.routes,
    )
    if routed.manifest is None:
        return DeliveryDecision(delivery, ignored=routed.ignored or "no route takes it")
    return DeliveryDecision(delivery, routed.manifest)


def decide_or_refuse(
    tenant: Tenant,
    source: str,
    headers: Mapping[str, str],
    body: bytes,
    content_type: str | None,
) -> DeliveryDecision:
    """``decide``, with a body that cannot be read refused as an IngressError (415, 422)."""
    try:
        return decide(tenant, source, headers, body, content_type)
    except events.MediaTypeError as exc:
        raise IngressError(415, "UnsupportedMediaType", str(exc)) from exc
    except events.MalformedError as exc:
        raise IngressError(422, "MalformedPayload", str(exc)) from exc


def settle(
    existing: Mapping[str, Any] | None, delivery: events.Delivery
) -> Literal["created", "duplicate", "conflict"]:
    """What a create came to: ``existing`` is None when the Session was created, else the
    Session that already had the name, which must be this delivery's (invariant 2)."""
    if existing is None:
        return "created"
    return "duplicate" if events.is_same_delivery(existing, delivery) else "conflict"
