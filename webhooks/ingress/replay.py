"""Replaying a stored delivery: what a replay adds to the ingress's pipeline. Pure.

A replay runs the ingress's own pipeline again (``pipeline.Pipeline``): the signature is
verified with the namespace's *current* signing secret, the *current* policy's event
selection applies, and the Session gets the same deterministic name from the delivery id,
so a second replay, or the sender's own redelivery, finds the Session already there and
creates nothing (invariant 2 of docs/architecture.md). This module decides what differs:
the tenant comes from the NamespacePolicy as read now, a stored request is refused before
the pipeline when it cannot belong to that tenant, Slack's timestamp is checked against
the time the request was received, and the Session names who replayed it.

An admin replay is not a third party's replay attack: the admin's own credentials create
the Session, and the admission webhook checks the ``ambient.ai/replayed-by`` annotation
names them.
"""

from __future__ import annotations

from typing import Any

from ambient.crds import times
from ambient.crds.models import NamespacePolicySpec
from ambient.crds.naming import ANNOTATION_REPLAYED_BY, ANNOTATION_REPLAYED_FROM

from . import events
from .delivery_records import StoredRequest
from .keyindex import Tenant
from .routing import compile_routes


def tenant_of(namespace: str, spec: dict[str, Any]) -> Tenant:
    """The namespace's ingress settings from its NamespacePolicy spec, as the key index
    holds them. Raises pydantic.ValidationError for an invalid spec."""
    parsed = NamespacePolicySpec.model_validate(spec)
    ref = parsed.webhook_auth.signing_secret_ref
    return Tenant(
        namespace,
        ref.name if ref else None,
        parsed.ingress,
        parsed.defaults,
        compile_routes(parsed.ingress.routes),
    )


def refusal(stored: StoredRequest, tenant: Tenant) -> str | None:
    """Why ``stored`` cannot be replayed in ``tenant``'s namespace at all, or None."""
    if stored.source not in events.SOURCES:
        return f"unknown source {stored.source!r}"
    if tenant.namespace != stored.namespace:
        return "the stored request belongs to another namespace"
    return None


def signed_at(stored: StoredRequest) -> float | None:
    """The time a replay checks the signature's timestamp against (Slack and Standard
    Webhooks sign one and refuse it after five minutes): when the request was received."""
    if stored.source not in ("slack", "generic"):
        return None
    return times.parse(stored.received_at).timestamp()


def annotations_for(stored: StoredRequest, replayed_by: str) -> dict[str, str]:
    """The replayed Session's annotations: who replayed which delivery."""
    return {ANNOTATION_REPLAYED_BY: replayed_by, ANNOTATION_REPLAYED_FROM: stored.trace_id}
