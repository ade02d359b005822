"""The NamespacePolicies the operator knows: one list at start-up, then the watch.

One cache feeds every reader (the lifecycle's cap and compliance checks, notifications,
the usage roll-up), so each policy is held and parsed once, not once per concern. Pure:
the controller feeds it bodies; nothing here talks to the API.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import pydantic

from ambient.crds.models import NamespacePolicy


@dataclass(frozen=True)
class Known:
    """One NamespacePolicy as last seen: its status as written (what the usage roll-up
    compares with), and the parsed policy, or None when it cannot be read."""

    namespace: str
    name: str
    status: dict[str, Any]
    policy: NamespacePolicy | None


class PolicyCache:
    """NamespacePolicies by namespace and name, each parsed once per change."""

    def __init__(self) -> None:
        self._known: dict[str, dict[str, Known]] = {}

    def keep(
        self, body: Mapping[str, Any], deleted: bool = False
    ) -> pydantic.ValidationError | None:
        """Record a policy from a list or a watch event (``deleted``: forget it); returns
        why it cannot be read, if it cannot, so the caller can say so once."""
        meta = body.get("metadata") or {}
        namespace, name = str(meta.get("namespace", "")), str(meta.get("name", ""))
        if deleted:
            bodies = self._known.get(namespace, {})
            bodies.pop(name, None)
            if not bodies:
                self._known.pop(namespace, None)
            return None
        error = None
        try:
            policy: NamespacePolicy | None = NamespacePolicy.model_validate(
                {
                    "metadata": {k: v for k, v in meta.items() if k != "managedFields"},
                    "spec": body.get("spec") or {},
                    "status": body.get("status") or {},
                }
            )
        except pydantic.ValidationError as exc:
            policy, error = None, exc
        status = dict(body.get("status") or {})
        self._known.setdefault(namespace, {})[name] = Known(namespace, name, status, policy)
        return error

    def policy(self, namespace: str) -> NamespacePolicy | None:
        """The namespace's policy (the first by name if there are several), or None when
        it has none or its policy cannot be read."""
        bodies = self._known.get(namespace)
        if not bodies:
            return None
        return bodies[min(bodies)].policy

    def __iter__(self) -> Iterator[Known]:
        for bodies in list(self._known.values()):
            yield from list(bodies.values())

    def __len__(self) -> int:
        return sum(len(b) for b in self._known.values())
