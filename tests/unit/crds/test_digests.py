"""The one digest helper."""

from __future__ import annotations

import hashlib

from ambient.crds.digests import sha256, sha256_hex


def test_bytes_and_strings_hash_as_utf8() -> None:
    assert sha256_hex(b"abc") == hashlib.sha256(b"abc").hexdigest()
    assert sha256_hex("é") == hashlib.sha256("é".encode()).hexdigest()
    assert len(sha256_hex("")) == 64 and sha256_hex("k") == sha256_hex("k").lower()
    assert sha256(b"abc") == hashlib.sha256(b"abc").digest()
