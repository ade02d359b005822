"""NamespacePolicies as the watch last delivered them, indexed for the admission webhook's
decisions without API calls (the ingress's counterpart is ``ingress.keyindex.KeyIndex``)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Mapping
from typing import Any

import pydantic

from ambient.crds.models import NamespacePolicy

log = logging.getLogger(__name__)


def _hashes(policy: Mapping[str, Any]) -> list[str]:
    keys = ((policy.get("spec") or {}).get("webhookAuth") or {}).get("apiKeys") or {}
    found: list[str] = []
    for value in keys.values():
        found.extend(
            [value] if isinstance(value, str) else [v for v in value or [] if isinstance(v, str)]
        )
    return found


class PolicyIndex:
    """Thread-safe: the watch thread writes, request handlers read a consistent snapshot."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_key: dict[tuple[str, str], NamespacePolicy] = {}
        self._raw: dict[tuple[str, str], Mapping[str, Any]] = {}
        self._synced = threading.Event()
        self._snapshot: tuple[dict[str, list[NamespacePolicy]], dict[str, str]] = ({}, {})

    @property
    def synced(self) -> bool:
        """True once the first full listing is in: never answer before it."""
        return self._synced.is_set()

    def replace_all(self, items: Iterable[Mapping[str, Any]]) -> None:
        with self._lock:
            self._by_key.clear()
            self._raw.clear()
            for item in items:
                self._put(item)
            self._rebuild()
        self._synced.set()

    def upsert(self, item: Mapping[str, Any]) -> None:
        with self._lock:
            self._put(item)
            self._rebuild()

    def remove(self, item: Mapping[str, Any]) -> None:
        meta = item.get("metadata") or {}
        with self._lock:
            key = (str(meta.get("namespace", "")), str(meta.get("name", "")))
            self._by_key.pop(key, None)
            self._raw.pop(key, None)
            self._rebuild()

    def snapshot(self) -> tuple[dict[str, list[NamespacePolicy]], dict[str, str]]:
        """(policies by namespace, key hash -> namespace); never mutated after it is made."""
        return self._snapshot

    def _put(self, item: Mapping[str, Any]) -> None:
        meta = item.get("metadata") or {}
        key = (str(meta.get("namespace", "")), str(meta.get("name", "")))
        try:
            self._by_key[key] = NamespacePolicy.model_validate(dict(item))
        except pydantic.ValidationError as exc:
            # Fail closed: a policy the webhook cannot read counts as an empty one, which
            # allows no model, tool or budget (dropping it could let a default policy apply).
            log.warning("NamespacePolicy %s/%s unreadable: %s", *key, exc)
            self._by_key[key] = NamespacePolicy.model_validate(
                {"metadata": {"name": key[1], "namespace": key[0]}, "spec": {}}
            )
        self._raw[key] = item

    def _rebuild(self) -> None:
        by_ns: dict[str, list[NamespacePolicy]] = {}
        for (namespace, _), policy in sorted(self._by_key.items()):
            by_ns.setdefault(namespace, []).append(policy)
        owners: dict[str, str] = {}
        for (namespace, _), raw in self._raw.items():
            for h in _hashes(raw):
                owners.setdefault(h, namespace)
        self._snapshot = (by_ns, owners)
