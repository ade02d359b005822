"""In what order a plan's objects are created, and whose they are.

Before a runner Job, the Session's runner identity: ServiceAccount and Role at once, then
the RoleBinding (the API server checks a binding against its Role, unless the creator may
``bind``, so the Role must exist first). The identity is not in the Plan: it is the same
for every attempt. Pure: the controller creates what this lists.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ambient.crds.models import Session
from ambient.operator.sessions import builders


@dataclass(frozen=True)
class Creation:
    """Objects to create: the identity in steps (each step's objects at once, every one
    owned by the Session), then the plan's objects one by one."""

    identity: list[list[dict[str, Any]]] = field(default_factory=list)
    objects: list[dict[str, Any]] = field(default_factory=list)


def creation(manifests: Sequence[dict[str, Any]], session: Session | None) -> Creation:
    """The steps that create ``manifests``: with a Job, the Session's identity first. (The
    namespace's runner NetworkPolicy is made before any of them: ``sessions/network.py``.)"""
    objects = list(manifests)
    if session is None or not any(m["kind"] == "Job" for m in objects):
        return Creation(objects=objects)
    sa, role, binding = builders.runner_identity(session)
    return Creation(identity=[[sa, role], [binding]], objects=objects)


def owned_by(body: Mapping[str, Any], session: Session) -> bool:
    """Whether an object names the Session as an owner."""
    refs = (body.get("metadata") or {}).get("ownerReferences") or []
    return any(r.get("uid") == session.metadata.uid for r in refs)


def conflict(
    manifest: Mapping[str, Any], created: bool, existing: Mapping[str, Any], session: Session
) -> str | None:
    """Why no Job may be created, when someone else's object holds a deterministic name
    of the identity (a runner never runs under an identity the Session does not own);
    None when the object was created now or is the Session's own."""
    if created or owned_by(existing, session):
        return None
    return (
        f"{manifest['kind']} {manifest['metadata']['name']} exists and is not owned "
        "by this Session; delete or rename it so the runner can be created"
    )


def untrusted_context(
    manifest: Mapping[str, Any], created: bool, existing: Mapping[str, Any], session: Session
) -> str | None:
    """Why a context ConfigMap that already existed may not be used: it is not owned by
    this Session, or its content is not what the operator would write (someone made or
    edited it in advance). None when it was created now, or is exactly the planned one."""
    if created or manifest.get("kind") != "ConfigMap":
        return None
    name = manifest["metadata"]["name"]
    if not owned_by(existing, session):
        return (
            f"ConfigMap {name} exists and is not owned by this Session, so its context was "
            "not written by the operator; delete it so the runner can be created"
        )
    if (existing.get("data") or {}) != manifest.get("data"):
        return (
            f"ConfigMap {name} does not hold the context the operator wrote for this Session "
            "(it was changed); delete it so the runner can be created"
        )
    return None
