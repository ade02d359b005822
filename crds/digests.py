"""The one digest helper: hex SHA-256, for key hashes, content checks and short names.

An ingress key is stored only as this hash (``spec.webhookAuth.apiKeys``); payloads,
archives and artifacts are checked against it; names and store keys that must be short
and deterministic keep a prefix of it. Pure, and importable from every layer.
"""

from __future__ import annotations

import hashlib


def sha256_hex(data: bytes | str) -> str:
    """Lowercase hex SHA-256 of ``data`` (a string is hashed as its UTF-8 bytes)."""
    return hashlib.sha256(data.encode() if isinstance(data, str) else data).hexdigest()


def sha256(data: bytes | str) -> bytes:
    """The raw 32-byte SHA-256 of ``data``, for a digest that hashes other digests."""
    return hashlib.sha256(data.encode() if isinstance(data, str) else data).digest()
