"""The object store's key layout and the digests that name its objects (pure)."""

from __future__ import annotations

import hashlib


def sha256_hex(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()
