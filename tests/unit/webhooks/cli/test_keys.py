from __future__ import annotations

import pytest

from ambient.webhooks.cli import keys
from ambient.webhooks.ingress.keyindex import key_hash


def test_new_keys_are_random_and_url_safe() -> None:
    a, b = keys.new_key(), keys.new_key()
    assert a != b and len(a) >= 40
    assert all(c.isalnum() or c in "-_" for c in a)


def test_create_replaces_rotate_adds_revoke_removes() -> None:
    old, new = key_hash("old"), key_hash("new")
    assert keys.hashes_after("create", [old], new, None) == [new]
    assert keys.hashes_after("rotate", old, new, None) == [old, new]
    assert keys.hashes_after("revoke", [old, new], None, old) == [new]
    assert keys.hashes_after("revoke", [old, new], None, None) == []
    with pytest.raises(ValueError, match="not among"):
        keys.hashes_after("revoke", [old], None, new)


def test_the_url_to_paste_carries_the_key_in_the_path() -> None:
    assert keys.webhook_url("https://in.example/", "github", "abc") == (
        "https://in.example/webhooks/github/abc"
    )
