"""What the mutating admission webhook writes into a Session (pure): who created it, where
the Session waits for approval, and who cancelled it when the canceller did not say.

Both come from the request's userInfo, which the API server sets; nothing a caller writes
in the object is kept for them. The validating webhook then checks the same facts, so a
cluster without this mutating webhook still refuses a forged creator.

The creator exists for one rule, four eyes (an approver may not approve a Session they
created), so only a Session with ``spec.policy.approvalRequired`` gets it. The spec cannot
change after the create, so a Session never comes to need an approval it has no creator
for; and a Session without one cannot be given one later (the validating webhook refuses a
changed creator). Stamping every create cost each one a mutation inside the API server
(the fast path's MutatingAdmissionPolicy), for an annotation nothing read.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ambient.crds.models import GROUP
from ambient.crds.naming import ANNOTATION_CANCELLED_BY, ANNOTATION_CREATED_BY_USER
from ambient.webhooks.admission.review import user_of


def _pointer(key: str) -> str:
    """An annotation key as a JSON Pointer segment (RFC 6901)."""
    return "/metadata/annotations/" + key.replace("~", "~0").replace("/", "~1")


def _approval_required(obj: Mapping[str, Any]) -> bool:
    policy = (obj.get("spec") or {}).get("policy") or {}
    return policy.get("approvalRequired") is True


def stamps(request: Mapping[str, Any]) -> dict[str, str]:
    """The annotations to set on this request's object (empty: change nothing)."""
    resource = request.get("resource") or {}
    if (
        resource.get("group") != GROUP
        or resource.get("resource") != "sessions"
        or request.get("subResource")
    ):
        return {}
    username = user_of(request).username
    obj = request.get("object") or {}
    annotations = (obj.get("metadata") or {}).get("annotations") or {}
    operation = request.get("operation")
    wanted: dict[str, str] = {}
    if operation == "CREATE":
        if (
            _approval_required(obj)
            and username
            and annotations.get(ANNOTATION_CREATED_BY_USER) != username
        ):
            wanted[ANNOTATION_CREATED_BY_USER] = username
    elif operation == "UPDATE":
        old = request.get("oldObject") or {}
        old_annotations = (old.get("metadata") or {}).get("annotations") or {}
        creator = old_annotations.get(ANNOTATION_CREATED_BY_USER)
        # Kept as it was: an update that drops it (a PUT of a manifest without it) gets it back.
        if creator is not None and annotations.get(ANNOTATION_CREATED_BY_USER) != creator:
            wanted[ANNOTATION_CREATED_BY_USER] = creator
        cancelling = bool((obj.get("spec") or {}).get("cancel")) and not bool(
            (old.get("spec") or {}).get("cancel")
        )
        if cancelling and username and not annotations.get(ANNOTATION_CANCELLED_BY):
            wanted[ANNOTATION_CANCELLED_BY] = username
    return wanted


def patch(request: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The JSON Patch that sets ``stamps(request)`` (empty: no patch)."""
    wanted = stamps(request)
    if not wanted:
        return []
    metadata = (request.get("object") or {}).get("metadata") or {}
    if not isinstance(metadata.get("annotations"), dict):
        return [
            {"op": "add", "path": "/metadata/annotations", "value": dict(sorted(wanted.items()))}
        ]
    return [
        {"op": "add", "path": _pointer(key), "value": value}
        for key, value in sorted(wanted.items())
    ]
