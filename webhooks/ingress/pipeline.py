"""What a verified request starts: the one decision the ingress and a replay share. Pure.

After the signature holds, both parse the body, let pings and Slack's URL challenge start
nothing, apply the namespace's event selection and build the Session with its
deterministic name. One function does it, so a rule added here holds for both.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from . import events
from .keyindex import Tenant


@dataclass(frozen=True)
class Decision:
    """A parsed delivery and what it asks for: a Session (``manifest``), nothing because
    the policy does not select it (``ignored`` says why), or nothing at all (a ping or a
    challenge: ``delivery.kind`` says which)."""

    delivery: events.Delivery = field(repr=False)
    manifest: dict[str, Any] | None = None
    ignored: str | None = None


def decide(
    tenant: Tenant,
    source: str,
    headers: Mapping[str, str],
    body: bytes,
    content_type: str | None,
) -> Decision:
    """Decide what a request, already verified, starts in ``tenant``'s namespace.

    Raises events.MediaTypeError or events.MalformedError for a body that cannot be read.
    """
    delivery = events.parse(source, headers, body, content_type)
    if delivery.kind != "session":
        return Decision(delivery)
    reason = events.ignore_reason(delivery, tenant.ingress)
    if reason is not None:
        return Decision(delivery, ignored=reason)
    return Decision(delivery, events.build_session(delivery, tenant.namespace, tenant.defaults))
