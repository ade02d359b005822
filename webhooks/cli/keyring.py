"""What ``ambient keys`` changes in a NamespacePolicy's ``spec.webhookAuth``. Pure: the
current webhookAuth, who and when in; the new one out (the caller writes it guarded by the
policy's resourceVersion).

A key is ``amb_<source>_`` and 43 random URL-safe characters; only its SHA-256 and its
visible prefix (``amb_<source>_`` and four characters) are stored. ``create`` replaces the
source's keys, ``rotate`` adds one beside them, ``revoke`` moves keys to ``revokedKeys``
with when and by whom. Keys made before prefixes (``apiKeys.<source>``) are listed,
replaced and revoked the same way.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from ambient.crds import times
from ambient.crds.digests import sha256_hex
from ambient.crds.models import ApiKeys

SOURCES = tuple(ApiKeys.model_fields)
MAX_REVOKED = 256


class KeyringError(ValueError):
    """The change asked for cannot be made; nothing was written."""


def new_key(source: str) -> tuple[str, str, str]:
    """A fresh key, its prefix and its hash."""
    key = f"amb_{source}_{secrets.token_urlsafe(32)}"
    return key, prefix_of(key, source), sha256_hex(key)


def prefix_of(key: str, source: str) -> str:
    return key[: len(f"amb_{source}_") + 4]


def parse_expiry(text: str | None, now: datetime) -> str | None:
    """``30d``, ``12h`` or an RFC 3339 time, as an RFC 3339 time; None for no expiry."""
    if not text:
        return None
    units = {"d": 86400, "h": 3600, "m": 60}
    if text[-1] in units and text[:-1].isdigit():
        return times.rfc3339(now + timedelta(seconds=int(text[:-1]) * units[text[-1]]))
    moment = times.parse_or_none(text)
    if moment is None:
        raise KeyringError(f"--expires takes 30d, 12h, 90m or an RFC 3339 time, not {text!r}")
    if moment <= now:
        raise KeyringError(f"--expires {text} is in the past")
    return times.rfc3339(moment)


@dataclass(frozen=True)
class Listed:
    """One key as ``keys list`` shows it."""

    source: str
    prefix: str
    hash: str
    state: str
    created: str = ""
    expires: str = ""
    last_used: str = ""
    by: str = ""


def _legacy(auth: Mapping[str, Any], source: str) -> list[str]:
    value = (auth.get("apiKeys") or {}).get(source)
    return [value] if isinstance(value, str) else list(value or [])


def _revoke(entries: list[dict[str, Any]], who: str, stamp: str) -> list[dict[str, Any]]:
    return [
        {
            "source": e["source"],
            "prefix": e.get("prefix", ""),
            "hash": e["hash"],
            "revokedAt": stamp,
            "revokedBy": who,
        }
        for e in entries
    ]


def add(
    auth: Mapping[str, Any],
    source: str,
    *,
    replace: bool,
    who: str,
    now: datetime,
    expires: str | None = None,
    description: str = "",
) -> tuple[dict[str, Any], str]:
    """A new key for ``source`` (replacing its others when ``replace``): the new
    webhookAuth and the key, to show once."""
    if source not in SOURCES:
        raise KeyringError(f"--source must be one of {', '.join(SOURCES)}")
    stamp = times.rfc3339(now)
    key, prefix, digest = new_key(source)
    keys = [dict(k) for k in auth.get("keys") or []]
    revoked = [dict(r) for r in auth.get("revokedKeys") or []]
    api_keys = dict(auth.get("apiKeys") or {})
    if replace:
        gone = [k for k in keys if k["source"] == source]
        gone += [{"source": source, "hash": h} for h in _legacy(auth, source)]
        revoked += _revoke(gone, who, stamp)
        keys = [k for k in keys if k["source"] != source]
        api_keys[source] = None
    entry: dict[str, Any] = {
        "source": source,
        "hash": digest,
        "prefix": prefix,
        "createdAt": stamp,
        "createdBy": who,
    }
    if expires:
        entry["expiresAt"] = expires
    if description:
        entry["description"] = description
    keys.append(entry)
    return _result(auth, keys, revoked, api_keys), key


def revoke(
    auth: Mapping[str, Any],
    source: str,
    *,
    who: str,
    now: datetime,
    prefix: str | None = None,
    digest: str | None = None,
) -> tuple[dict[str, Any], int]:
    """Revoke the source's keys matching ``prefix`` or ``digest`` (every one of the source
    when neither is given): the new webhookAuth and how many went."""
    stamp = times.rfc3339(now)

    def matches(entry: Mapping[str, Any]) -> bool:
        if entry["source"] != source:
            return False
        if prefix is not None:
            return bool(entry.get("prefix")) and prefix.startswith(str(entry.get("prefix")))
        return digest is None or entry["hash"] == digest

    keys = [dict(k) for k in auth.get("keys") or []]
    legacy = [{"source": source, "hash": h} for h in _legacy(auth, source)]
    gone = [k for k in keys + legacy if matches(k)]
    if not gone:
        raise KeyringError(f"no {source} key matches; `ambient keys list` shows them")
    kept_legacy = [e["hash"] for e in legacy if e not in gone]
    api_keys = dict(auth.get("apiKeys") or {})
    api_keys[source] = kept_legacy or None
    revoked = [dict(r) for r in auth.get("revokedKeys") or []] + _revoke(gone, who, stamp)
    keys = [k for k in keys if k not in gone]
    return _result(auth, keys, revoked, api_keys), len(gone)


def _result(
    auth: Mapping[str, Any],
    keys: list[dict[str, Any]],
    revoked: list[dict[str, Any]],
    api_keys: dict[str, Any],
) -> dict[str, Any]:
    # The oldest revocations go first past the schema's cap: the audit trail keeps them all.
    return {**auth, "keys": keys, "revokedKeys": revoked[-MAX_REVOKED:], "apiKeys": api_keys}


def listing(auth: Mapping[str, Any], last_used: Mapping[str, str]) -> list[Listed]:
    """Every key, active first, then the revoked ones."""
    rows = [
        Listed(
            k["source"],
            k.get("prefix", ""),
            k["hash"],
            "active",
            k.get("createdAt", ""),
            k.get("expiresAt") or "never",
            last_used.get(k["hash"][:16], "-"),
            k.get("createdBy", ""),
        )
        for k in auth.get("keys") or []
    ]
    for source in SOURCES:
        rows += [
            Listed(source, "(no prefix)", h, "active", "", "never", last_used.get(h[:16], "-"))
            for h in _legacy(auth, source)
        ]
    rows += [
        Listed(
            r["source"],
            r.get("prefix") or "(no prefix)",
            r["hash"],
            "revoked",
            expires=r.get("revokedAt", ""),
            by=r.get("revokedBy", ""),
        )
        for r in auth.get("revokedKeys") or []
    ]
    return rows
