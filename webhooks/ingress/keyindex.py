"""Key → namespace index, kept from a watch of NamespacePolicies. Pure and thread-safe.

Only SHA-256 hashes of keys are held. A presented key is hashed once and looked up in a
dict (O(1)); the stored hash is then compared with hmac.compare_digest. A hash listed by
two namespaces is ambiguous and authenticates nowhere (fail closed).
"""

from __future__ import annotations

import hmac
import logging
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from ambient.crds import times
from ambient.crds.digests import sha256_hex
from ambient.crds.models import ApiKeys, IngressPolicy, NamespacePolicySpec, SessionDefaults

from .routing import EMPTY, RouteTable, compile_routes

log = logging.getLogger("ambient.ingress.keyindex")
HASH_RE = re.compile(r"^[0-9a-f]{64}$")
# Every source with a key: github, jira, slack, alertmanager, generic.
KEY_SOURCES = tuple(ApiKeys.model_fields)


def key_hash(key: str) -> str:
    """Lowercase hex SHA-256 of a key: what spec.webhookAuth.apiKeys.<source> holds."""
    return sha256_hex(key)


def hashes_of(value: Any) -> list[str]:
    """A string or a list of hashes (rotation) as a list; malformed entries are dropped."""
    items = [value] if isinstance(value, str) else value if isinstance(value, list) else []
    return [h.lower() for h in items if isinstance(h, str) and HASH_RE.match(h.lower())]


@dataclass(frozen=True)
class KeyInfo:
    """What the index knows of one key beyond its namespace."""

    hash: str
    expires_at: datetime | None = None
    """When the ingress stops taking it (spec.webhookAuth.keys[].expiresAt)."""

    def expired(self, now: datetime) -> bool:
        return self.expires_at is not None and self.expires_at <= now


@dataclass(frozen=True)
class Tenant:
    """What the ingress needs to know about a namespace once its key matched."""

    namespace: str
    signing_secret: str | None
    ingress: IngressPolicy
    defaults: SessionDefaults
    routes: RouteTable = field(default=EMPTY)
    """spec.ingress.routes compiled when the policy was indexed (filters and templates
    compiled once per text, never per delivery)."""


class KeyIndex:
    """(source, key hash) → namespace, plus each namespace's ingress settings."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_hash: dict[tuple[str, str], set[str]] = {}
        self._tenants: dict[str, Tenant] = {}
        self._hashes: dict[str, set[tuple[str, str]]] = {}
        self._expiry: dict[tuple[str, str], datetime | None] = {}
        self._policy_names: dict[str, str] = {}
        self.synced = False

    def upsert(self, namespace: str, spec: dict[str, Any]) -> str | None:
        """Index a NamespacePolicy's spec; returns an error when it is invalid (then no keys)."""
        try:
            parsed = NamespacePolicySpec.model_validate(spec)
        except ValidationError as exc:
            self.remove(namespace)
            return f"NamespacePolicy in {namespace} is invalid: {exc.error_count()} errors"
        auth = spec.get("webhookAuth") or {}
        keys = auth.get("apiKeys") or {}
        pairs = {(src, h) for src in KEY_SOURCES for h in hashes_of(keys.get(src))}
        expiry = {
            (k.source, k.hash): times.parse_or_none(k.expires_at) for k in parsed.webhook_auth.keys
        }
        pairs |= set(expiry)
        # A revoked key authenticates nothing, even if an apiKeys entry still lists it.
        pairs -= {(r.source, r.hash) for r in parsed.webhook_auth.revoked_keys}
        ref = parsed.webhook_auth.signing_secret_ref
        tenant = Tenant(
            namespace,
            ref.name if ref else None,
            parsed.ingress,
            parsed.defaults,
            compile_routes(parsed.ingress.routes),
        )
        with self._lock:
            self._drop(namespace)
            self._tenants[namespace] = tenant
            self._hashes[namespace] = pairs
            for pair in pairs:
                self._by_hash.setdefault(pair, set()).add(namespace)
                if expiry.get(pair) is not None:
                    self._expiry[pair] = expiry[pair]
        return None

    def remove(self, namespace: str) -> None:
        with self._lock:
            self._drop(namespace)
            self._policy_names.pop(namespace, None)

    def name_policy(self, namespace: str, name: str) -> None:
        """Remember the NamespacePolicy's name (its status is written by name)."""
        self._policy_names[namespace] = name

    def policy_name(self, namespace: str) -> str | None:
        return self._policy_names.get(namespace)

    def replace_all(self, items: list[tuple[str, dict[str, Any]]]) -> None:
        """After a (re-)list: exactly these policies, then mark the index synced."""
        seen = {ns for ns, _ in items}
        for ns in list(self._tenants):
            if ns not in seen:
                self.remove(ns)
        for ns, spec in items:
            self.upsert(ns, spec)
        self.synced = True

    def _drop(self, namespace: str) -> None:
        self._tenants.pop(namespace, None)
        for pair in self._hashes.pop(namespace, set()):
            self._expiry.pop(pair, None)
            owners = self._by_hash.get(pair)
            if owners is not None:
                owners.discard(namespace)
                if not owners:
                    del self._by_hash[pair]

    def lookup(self, source: str, key: str) -> Tenant | None:
        """The namespace a key belongs to, or None (unknown, or listed by two namespaces)."""
        found = self.lookup_key(source, key)
        return None if found is None else found[0]

    def lookup_key(self, source: str, key: str) -> tuple[Tenant, KeyInfo] | None:
        """The namespace a key belongs to and what is known of the key, or None."""
        digest = key_hash(key)
        with self._lock:
            owners = self._by_hash.get((source, digest))
            if not owners or len(owners) != 1:
                return None
            (namespace,) = owners
            # The dict finds the entry by hash, so its timing can reveal at most a prefix of
            # the hash, never the key; the final check is constant-time all the same.
            if not any(
                hmac.compare_digest(h, digest) for s, h in self._hashes[namespace] if s == source
            ):
                return None
            return self._tenants[namespace], KeyInfo(digest, self._expiry.get((source, digest)))


class KeyIndexSink:
    """Adapts the index to the shared NamespacePolicy watch (``webhooks.policy_watch``),
    which hands over whole objects: the index keeps only each namespace's spec."""

    def __init__(self, index: KeyIndex) -> None:
        self.index = index

    def replace_all(self, items: list[Mapping[str, Any]]) -> None:
        self.index.replace_all([(_namespace(i), dict(i.get("spec") or {})) for i in items])
        for item in items:
            self.index.name_policy(_namespace(item), _name(item))

    def upsert(self, item: Mapping[str, Any]) -> None:
        self.index.name_policy(_namespace(item), _name(item))
        error = self.index.upsert(_namespace(item), dict(item.get("spec") or {}))
        if error:
            log.warning("policy ignored: %s", error)

    def remove(self, item: Mapping[str, Any]) -> None:
        self.index.remove(_namespace(item))


def _namespace(item: Mapping[str, Any]) -> str:
    return str((item.get("metadata") or {}).get("namespace", ""))


def _name(item: Mapping[str, Any]) -> str:
    return str((item.get("metadata") or {}).get("name", ""))
