"""Every object-store key: the layouts objects were written at (they must stay readable),
and the parsers retention and the CLIs read them back with."""

from __future__ import annotations

from datetime import date

import pytest

from ambient.common.store import keys
from ambient.crds.digests import sha256_hex

DAY = date(2026, 3, 1)


def test_payload_key() -> None:
    assert keys.payload_key("pfx/", "team-a", "github", "g-1") == (
        "pfx/team-a/payloads/github/g-1.json"
    )
    assert (
        keys.payload_key("", "team-a", "slack", "Ev0.1_x") == "team-a/payloads/slack/Ev0.1_x.json"
    )
    odd = "a/../b c"
    assert keys.payload_key("", "team-a", "jira", odd) == (
        f"team-a/payloads/jira/{sha256_hex(odd)}.json"
    )


def test_history_archive_key_and_its_range() -> None:
    key = keys.history_archive_key("/pfx/", "team-a", "s1", "u-1", from_seq=0, to_seq=499)
    assert key == "pfx/team-a/s1/u-1/history/0-499.json"
    assert keys.history_archive_key("", "team-a", "s1", "u-1", from_seq=5, to_seq=9) == (
        "team-a/s1/u-1/history/5-9.json"
    )
    assert keys.history_archive_prefix("pfx", "team-a", "s1") == "pfx/team-a/s1/"
    assert key.startswith(keys.history_archive_prefix("pfx", "team-a", "s1"))
    assert keys.history_archive_range("pfx", "team-a", "s1", key) == (0, 499)


@pytest.mark.parametrize(
    "key",
    [
        "pfx/team-a/s1/out/report.txt",  # an artifact of the same Session
        "pfx/team-a/s1/u-1/history/notes.json",
        "pfx/team-a/s1/u-1/sub/history/0-1.json",
        "pfx/team-a/s10/u-1/history/0-1.json",  # another Session whose name starts alike
    ],
)
def test_history_archive_range_ignores_other_objects(key: str) -> None:
    assert keys.history_archive_range("pfx", "team-a", "s1", key) is None


def test_artifact_key_is_the_runner_contracts() -> None:
    assert keys.artifact_key("runs/", "team-a", "s1", "out/r.txt") == "runs/team-a/s1/out/r.txt"
    assert keys.artifact_key("", "team-a", "s1", "r.txt") == "team-a/s1/r.txt"


def test_session_archive_key() -> None:
    assert keys.session_archive_key("pfx/", "team-a", "s1", "u-1") == (
        "pfx/archive/sessions/team-a/s1-u-1.json"
    )
    assert keys.session_archive_key("", "team-a", "s1", "u-1") == (
        "archive/sessions/team-a/s1-u-1.json"
    )


def test_the_two_archives_never_share_a_folder() -> None:
    history = keys.history_archive_key("p", "team-a", "s1", "u-1", from_seq=0, to_seq=1)
    whole = keys.session_archive_key("p", "team-a", "s1", "u-1")
    assert not whole.startswith(keys.history_archive_prefix("p", "team-a", "s1"))
    assert history != whole


def test_dated_prefixes() -> None:
    assert keys.dated_prefix("pfx", "team-a", keys.AUDIT) == "pfx/audit/team-a/"
    assert keys.dated_prefix("", "team-a", keys.DELIVERIES) == "deliveries/team-a/"
    assert keys.day_prefix("pfx/", "team-a", DAY) == "pfx/audit/team-a/2026/03/01/"
    assert keys.day_prefix("", "team-a", DAY, keys.DELIVERIES) == "deliveries/team-a/2026/03/01/"


def test_audit_batch_key_round_trips_its_day() -> None:
    key = keys.audit_batch_key("pfx", "team-a", DAY, "2026-03-01T12:34:56.789+00:00", "b1")
    assert key == "pfx/audit/team-a/2026/03/01/20260301T123456-b1.jsonl"
    assert key.startswith(keys.dated_prefix("pfx", "team-a", keys.AUDIT))
    assert keys.key_day(key) == DAY


def test_delivery_request_key_is_deterministic_per_request_and_day() -> None:
    key = keys.delivery_request_key(
        "prod", "team-a", source="github", delivery_id="g-1", body=b"{}", day=DAY
    )
    assert key.startswith("prod/deliveries/team-a/2026/03/01/github-") and key.endswith(".json")
    assert len(key.rsplit("-", 1)[1]) == len("0123456789012345678901234567890123456789.json")
    assert keys.key_day(key) == DAY
    same = keys.delivery_request_key(
        "prod", "team-a", source="github", delivery_id="g-1", body=b"{}", day=DAY
    )
    others = {
        keys.delivery_request_key(
            "prod", "team-a", source="github", delivery_id="g-2", body=b"{}", day=DAY
        ),
        keys.delivery_request_key(
            "prod", "team-a", source="github", delivery_id="g-1", body=b"[]", day=DAY
        ),
        keys.delivery_request_key(
            "prod", "team-b", source="github", delivery_id="g-1", body=b"{}", day=DAY
        ),
    }
    assert key == same and key not in others and len(others) == 3


def test_delivery_request_key_layout_is_unchanged() -> None:
    """The digest as the ingress has always computed it (objects already stored)."""
    import hashlib  # noqa: PLC0415 - the reference computation, spelled out

    inner = hashlib.sha256(b"{}").digest()
    digest = hashlib.sha256(b"github\ng-1\n" + inner).hexdigest()[:40]
    assert keys.delivery_request_key(
        "", "team-a", source="github", delivery_id="g-1", body=b"{}", day=DAY
    ) == (f"deliveries/team-a/2026/03/01/github-{digest}.json")


@pytest.mark.parametrize("key", ["", "a/b", "audit/team-a/2026/13/01/x.jsonl", "x/y/z/w"])
def test_key_day_of_foreign_keys_is_none(key: str) -> None:
    assert keys.key_day(key) is None


def test_locations_round_trip() -> None:
    where = keys.location("bucket", "pfx/team-a/s1/u-1/history/0-1.json")
    assert where == "s3://bucket/pfx/team-a/s1/u-1/history/0-1.json"
    assert keys.split_location(where) == ("bucket", "pfx/team-a/s1/u-1/history/0-1.json")
    assert keys.split_location("pvc://claim/team-a/s1/x") is None


def test_artifact_prefix_is_the_folder_of_artifact_key() -> None:
    assert keys.artifact_prefix("runs/", "team-a", "s1") == "runs/team-a/s1/"
    assert keys.artifact_key("runs/", "team-a", "s1", "x").startswith(
        keys.artifact_prefix("runs/", "team-a", "s1")
    )


@pytest.mark.parametrize(
    ("key", "kind"),
    [
        ("p/team-a/s1/out/report.txt", None),
        ("p/team-a/s1/.cache/x", None),
        ("p/team-a/s1/history/notes.txt", None),
        (keys.session_archive_key("p", "team-a", "s1", "u-1"), "a Session archive"),
        (keys.audit_batch_key("p", "team-a", DAY, "2026-03-01T00:00:00Z", "b"), "an audit batch"),
        (
            keys.delivery_request_key(
                "p", "team-a", source="github", delivery_id="g", body=b"", day=DAY
            ),
            "a stored delivery request",
        ),
        (keys.payload_key("p", "team-a", "github", "g-1"), "a stored payload"),
        (
            keys.history_archive_key("p", "team-a", "s1", "u-1", from_seq=0, to_seq=9),
            "a history archive",
        ),
        ("other/team-a/s1/x", "outside the store's prefix"),
        ("pfx/team-a/s1/x", "outside the store's prefix"),
        ("p/team-a/s1/../../team-b/s/x", "not a plain key"),
        ("p/team-a/s1/./x", "not a plain key"),
        ("p/team-a/s1//x", "not a plain key"),
        ("p/team-a/s1/x/", "not a plain key"),
        ("p/team-a/s1/a b", "not a plain key"),
        ("p/team-a/s1/caf\u00e9", "not a plain key"),
    ],
)
def test_layout_of_names_every_kind_but_an_artifact(key: str, kind: str | None) -> None:
    found = keys.layout_of("p", key)
    assert found == kind if kind is None else (found is not None and found.startswith(kind))
