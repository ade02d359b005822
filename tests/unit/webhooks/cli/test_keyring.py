"""ambient keys' changes to spec.webhookAuth: prefixes, replace and rotate, revoke with who
and when, expiry parsing, and the listing with last use."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from ambient.crds.digests import sha256_hex
from ambient.crds.models import WebhookAuth
from ambient.webhooks.cli import keyring

NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
OLD = "a" * 64


def test_a_key_names_its_source_and_only_its_hash_and_prefix_are_kept() -> None:
    auth, key = keyring.add({}, "github", replace=True, who="alice", now=NOW)
    assert key.startswith("amb_github_") and len(key) > 50
    (entry,) = auth["keys"]
    assert entry["hash"] == sha256_hex(key)
    assert entry["prefix"] == key[: len("amb_github_") + 4]
    assert key not in str(auth)
    WebhookAuth.model_validate(auth)  # what the CRD schema takes


def test_create_revokes_the_source_s_other_keys_legacy_ones_included() -> None:
    first, _ = keyring.add({"apiKeys": {"github": OLD}}, "github", replace=False, who="a", now=NOW)
    assert len(first["keys"]) == 1 and first["apiKeys"]["github"] == OLD  # rotate keeps it
    second, _ = keyring.add(first, "github", replace=True, who="bob", now=NOW)
    assert len(second["keys"]) == 1
    assert second["apiKeys"]["github"] is None
    revoked = {(r["hash"], r["revokedBy"]) for r in second["revokedKeys"]}
    assert (OLD, "bob") in revoked and (first["keys"][0]["hash"], "bob") in revoked
    WebhookAuth.model_validate(second)


def test_revoke_by_prefix_or_the_key_itself_leaves_the_others() -> None:
    auth, one = keyring.add({}, "jira", replace=False, who="a", now=NOW)
    auth, two = keyring.add(auth, "jira", replace=False, who="a", now=NOW)
    after, count = keyring.revoke(auth, "jira", who="carol", now=NOW, prefix=one)
    assert count == 1
    assert [k["hash"] for k in after["keys"]] == [sha256_hex(two)]
    assert after["revokedKeys"][0]["revokedAt"] == "2026-12-05T12:00:00Z"
    with pytest.raises(keyring.KeyringError, match="no jira key matches"):
        keyring.revoke(after, "jira", who="carol", now=NOW, prefix=one)


def test_revoke_all_of_a_source_keeps_other_sources() -> None:
    auth, _ = keyring.add({"apiKeys": {"slack": OLD}}, "github", replace=False, who="a", now=NOW)
    after, count = keyring.revoke(auth, "slack", who="a", now=NOW)
    assert count == 1
    assert after["apiKeys"]["slack"] is None and len(after["keys"]) == 1


def test_expiry_in_durations_or_times_never_in_the_past() -> None:
    assert keyring.parse_expiry("30d", NOW) == "2027-01-04T12:00:00Z"
    assert keyring.parse_expiry("2027-01-01T00:00:00Z", NOW) == "2027-01-01T00:00:00Z"
    assert keyring.parse_expiry(None, NOW) is None
    with pytest.raises(keyring.KeyringError, match="in the past"):
        keyring.parse_expiry("2020-01-01T00:00:00Z", NOW)
    with pytest.raises(keyring.KeyringError, match="30d, 12h"):
        keyring.parse_expiry("soon", NOW)


def test_an_unknown_source_is_refused() -> None:
    with pytest.raises(keyring.KeyringError, match="--source must be one of"):
        keyring.add({}, "gitlab", replace=True, who="a", now=NOW)


def test_the_listing_shows_last_use_and_the_revoked() -> None:
    auth, key = keyring.add({"apiKeys": {"github": OLD}}, "github", replace=True, who="a", now=NOW)
    rows = keyring.listing(auth, {sha256_hex(key)[:16]: "2026-12-05T13:00:00Z"})
    assert [(r.state, r.last_used) for r in rows] == [
        ("active", "2026-12-05T13:00:00Z"),
        ("revoked", ""),
    ]
    assert rows[1].prefix == "(no prefix)" and rows[1].by == "a"
