from __future__ import annotations

from datetime import UTC, datetime

from ambient.webhooks.ingress.keyindex import KeyIndex, KeyIndexSink, hashes_of, key_hash


def _spec(github=None, slack=None, secret=None) -> dict:
    auth: dict = {"apiKeys": {}}
    if github is not None:
        auth["apiKeys"]["github"] = github
    if slack is not None:
        auth["apiKeys"]["slack"] = slack
    if secret:
        auth["signingSecretRef"] = {"name": secret}
    return {"webhookAuth": auth}


def test_a_key_finds_its_namespace_and_only_for_its_source() -> None:
    index = KeyIndex()
    index.upsert("team-a", _spec(github=key_hash("k1"), secret="sig"))
    tenant = index.lookup("github", "k1")
    assert tenant is not None
    assert (tenant.namespace, tenant.signing_secret) == ("team-a", "sig")
    assert index.lookup("slack", "k1") is None
    assert index.lookup("github", "k2") is None


def test_rotation_list_accepts_every_listed_key_and_revocation_removes() -> None:
    index = KeyIndex()
    index.upsert("team-a", _spec(github=[key_hash("old"), key_hash("new").upper()]))
    assert index.lookup("github", "old") is not None
    assert index.lookup("github", "new") is not None  # uppercase hex is normalised
    index.upsert("team-a", _spec(github=key_hash("new")))
    assert index.lookup("github", "old") is None
    index.remove("team-a")
    assert index.lookup("github", "new") is None


def test_a_hash_claimed_by_two_namespaces_authenticates_nowhere() -> None:
    index = KeyIndex()
    index.upsert("team-a", _spec(github=key_hash("shared")))
    index.upsert("team-b", _spec(github=key_hash("shared")))
    assert index.lookup("github", "shared") is None
    index.remove("team-b")
    tenant = index.lookup("github", "shared")
    assert tenant is not None and tenant.namespace == "team-a"


def test_malformed_hashes_are_dropped() -> None:
    assert hashes_of(["nothex", key_hash("a"), 5]) == [key_hash("a")]
    assert hashes_of(None) == []


def test_replace_all_forgets_deleted_policies_and_marks_synced() -> None:
    index = KeyIndex()
    index.upsert("gone", _spec(github=key_hash("g")))
    assert not index.synced
    index.replace_all([("team-a", _spec(github=key_hash("a")))])
    assert index.synced
    assert index.lookup("github", "g") is None
    assert index.lookup("github", "a") is not None


def test_an_invalid_policy_indexes_no_keys() -> None:
    index = KeyIndex()
    spec = _spec(github=key_hash("a"))
    spec["maxConcurrentSessions"] = -1
    assert index.upsert("team-a", spec) is not None
    assert index.lookup("github", "a") is None


def test_a_signing_secret_name_that_walks_the_path_indexes_no_keys() -> None:
    """A policy stored before the schema checked names authenticates nowhere: no Secret
    of another namespace can verify its deliveries (finding 2)."""
    index = KeyIndex()
    index.upsert("team-b", _spec(github=key_hash("b"), secret="../../team-alpha/secrets/x"))
    assert index.lookup("github", "b") is None
    index.upsert("team-b", _spec(github=key_hash("b"), secret="signing"))
    tenant = index.lookup("github", "b")
    assert tenant is not None and tenant.signing_secret == "signing"


def test_the_watch_sink_indexes_whole_objects_by_their_namespace(caplog) -> None:
    index = KeyIndex()
    sink = KeyIndexSink(index)

    def obj(ns: str, spec: dict) -> dict:
        return {"metadata": {"name": "policy", "namespace": ns}, "spec": spec}

    sink.replace_all([obj("team-a", _spec(github=key_hash("a")))])
    assert index.synced
    tenant = index.lookup("github", "a")
    assert tenant is not None and tenant.namespace == "team-a"
    sink.upsert(obj("team-b", _spec(github=key_hash("b"))))
    tenant = index.lookup("github", "b")
    assert tenant is not None and tenant.namespace == "team-b"
    bad = _spec(github=key_hash("b"))
    bad["maxConcurrentSessions"] = -1
    sink.upsert(obj("team-b", bad))
    assert index.lookup("github", "b") is None
    assert "team-b is invalid" in caplog.text
    sink.remove(obj("team-a", {}))
    assert index.lookup("github", "a") is None


def _prefixed(key: str, source: str = "github", **extra: str) -> dict[str, str]:
    return {
        "source": source,
        "hash": key_hash(key),
        "prefix": key[: len(f"amb_{source}_") + 4],
        "createdAt": "2026-12-01T00:00:00Z",
        **extra,
    }


def test_prefixed_keys_carry_their_expiry_and_revoked_ones_authenticate_nothing() -> None:
    index = KeyIndex()
    live, old, gone = "amb_github_live1234", "amb_github_old51234", "amb_github_gone1234"
    spec = {
        "webhookAuth": {
            "apiKeys": {"github": key_hash(gone)},  # listed, but revoked below
            "keys": [_prefixed(live), _prefixed(old, expiresAt="2026-12-02T00:00:00Z")],
            "revokedKeys": [
                {"source": "github", "hash": key_hash(gone), "revokedAt": "2026-12-03T00:00:00Z"}
            ],
        }
    }
    assert index.upsert("team-a", spec) is None
    found = index.lookup_key("github", live)
    assert found is not None and found[1].expires_at is None
    expiring = index.lookup_key("github", old)
    assert expiring is not None and expiring[1].expires_at is not None
    assert expiring[1].expired(datetime(2026, 12, 5, tzinfo=UTC))
    assert not expiring[1].expired(datetime(2026, 12, 1, tzinfo=UTC))
    assert index.lookup("github", gone) is None
    assert index.lookup("jira", live) is None


def test_the_sink_remembers_each_policy_s_name() -> None:
    index = KeyIndex()
    sink = KeyIndexSink(index)
    sink.upsert({"metadata": {"namespace": "team-a", "name": "policy"}, "spec": {}})
    assert index.policy_name("team-a") == "policy"
    sink.remove({"metadata": {"namespace": "team-a", "name": "policy"}})
    assert index.policy_name("team-a") is None
