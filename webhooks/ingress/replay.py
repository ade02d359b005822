"""Replaying a stored delivery: the ingress's own pipeline, run again. Pure.

The same functions the app runs decide a replay: the signature is verified with the
namespace's *current* signing secret (signatures.VERIFIERS), then pipeline.decide parses
the body, applies the *current* policy's event selection and builds the Session with the
same deterministic name from the delivery id, so a second replay, or the sender's own
redelivery, finds the Session already there and creates nothing (invariant 2).

Slack signs a timestamp and refuses it after five minutes; a replay checks it against the
time the request was received, which the stored request records. An admin replay is not
a third party's replay attack: the admin's own credentials create the Session, and the
admission webhook checks the ``ambient.ai/replayed-by`` annotation names them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from ambient.crds import times
from ambient.crds.models import NamespacePolicySpec
from ambient.crds.naming import ANNOTATION_REPLAYED_BY, ANNOTATION_REPLAYED_FROM

from . import events, pipeline
from .deliveries import StoredRequest
from .keyindex import Tenant
from .signatures import VERIFIERS, SignatureError, verify_slack


@dataclass(frozen=True)
class Plan:
    """What a replay does: create ``manifest``, or nothing, and why."""

    outcome: Literal["create", "ignored", "refused", "nothing"]
    reason: str = ""
    manifest: dict[str, Any] | None = None
    delivery: events.Delivery | None = field(default=None, repr=False)


def tenant_of(namespace: str, spec: dict[str, Any]) -> Tenant:
    """The namespace's ingress settings from its NamespacePolicy spec, as the key index
    holds them. Raises pydantic.ValidationError for an invalid spec."""
    parsed = NamespacePolicySpec.model_validate(spec)
    ref = parsed.webhook_auth.signing_secret_ref
    return Tenant(namespace, ref.name if ref else None, parsed.ingress, parsed.defaults)


def secret_needed(tenant: Tenant) -> bool:
    return tenant.signing_secret is not None


def plan(
    stored: StoredRequest,
    tenant: Tenant,
    secret: str | None,
    *,
    replayed_by: str,
) -> Plan:
    """Decide a replay of ``stored`` under the namespace's current policy and secret."""
    source = stored.source
    if source not in events.SOURCES:
        return Plan("refused", f"unknown source {source!r}")
    if tenant.namespace != stored.namespace:
        return Plan("refused", "the stored request belongs to another namespace")
    body = stored.raw_body()
    headers = stored.headers
    if secret is None:
        if not getattr(tenant.ingress, source).allow_unsigned:
            return Plan(
                "refused",
                f"SigningSecretMissing: no {source} signing secret is set for this namespace "
                f"(data key '{source}' of the Secret named by spec.webhookAuth.signingSecretRef)",
            )
    else:
        try:
            if source == "slack":
                received = times.parse(stored.received_at).timestamp()
                verify_slack(body, headers, secret, clock=lambda: received)
            else:
                VERIFIERS[source](body, headers, secret)
        except SignatureError as exc:
            return Plan("refused", f"InvalidSignature: {exc}")
    try:
        decision = pipeline.decide(tenant, source, headers, body, headers.get("content-type"))
    except (events.MediaTypeError, events.MalformedError) as exc:
        return Plan("refused", f"MalformedPayload: {exc}")
    delivery, manifest = decision.delivery, decision.manifest
    if decision.ignored is not None:
        return Plan("ignored", decision.ignored, delivery=delivery)
    if manifest is None:
        return Plan("nothing", f"a {delivery.kind} starts no Session", delivery=delivery)
    manifest["metadata"]["annotations"] = {
        ANNOTATION_REPLAYED_BY: replayed_by,
        ANNOTATION_REPLAYED_FROM: stored.trace_id,
    }
    return Plan("create", "", manifest, delivery)
