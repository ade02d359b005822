from __future__ import annotations

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
