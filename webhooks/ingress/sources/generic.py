"""Generic senders signing with Standard Webhooks (GitLab relays, CI systems, internal
tools). Pure.

The signature (``webhook-id``, ``webhook-timestamp``, ``webhook-signature``) is checked in
``signatures.verify_generic`` before this runs. The delivery id is ``webhook-id``, which
the Standard Webhooks spec keeps the same across retries of one message; the event name is
the body's ``type`` field, where the spec puts it (``{"type": ..., "timestamp": ...,
"data": ...}``): a header would not be covered by the signature.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from . import PayloadError

MAX_EVENT = 128


def parse(headers: Mapping[str, str], payload: dict[str, Any]) -> tuple[str, str]:
    """(event, delivery id): the body's ``type`` and the ``webhook-id`` header."""
    event = payload.get("type")
    if not isinstance(event, str) or not event.strip():
        raise PayloadError(
            "the body has no type field: Standard Webhooks payloads name their event in "
            '"type" (e.g. {"type": "pipeline.failed", "data": {...}})'
        )
    if len(event) > MAX_EVENT:
        raise PayloadError(f"type is longer than {MAX_EVENT} characters")
    delivery = (headers.get("webhook-id") or "").strip()
    if not delivery:
        raise PayloadError("missing the webhook-id header that every delivery carries")
    return event.strip(), delivery
