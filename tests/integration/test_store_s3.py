"""S3Store.put_once against a real S3-compatible server (moto's server mode): the write
the ingress and the history archiver rely on for exactly-once objects."""

from __future__ import annotations

import pytest

from ambient.common.store.s3 import (
    ContentConflictError,
    S3Store,
    StoreUnavailableError,
)

from .conftest import free_port


def test_put_once_writes_once_accepts_the_same_bytes_and_refuses_others(
    s3_store: S3Store,
) -> None:
    assert s3_store.put_once("p/a.json", b'{"n": 1}') is True
    assert s3_store.put_once("p/a.json", b'{"n": 1}') is False  # a retry: nothing new
    with pytest.raises(ContentConflictError, match="different content"):
        s3_store.put_once("p/a.json", b'{"n": 2}')
    assert s3_store.get("p/a.json") == b'{"n": 1}'
    assert s3_store.list_keys("p/") == ["p/a.json"]
    assert s3_store.location("p/a.json") == f"s3://{s3_store.bucket}/p/a.json"


def test_an_object_written_without_the_checksum_is_compared_by_content(
    s3_store: S3Store,
) -> None:
    s3_store.put_new("p/b.json", b"same")  # no sha256 metadata
    assert s3_store.put_once("p/b.json", b"same") is False
    with pytest.raises(ContentConflictError):
        s3_store.put_once("p/b.json", b"other")


def test_an_unreachable_store_is_unavailable_not_a_conflict(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    dead = S3Store(
        "b", endpoint_url=f"http://127.0.0.1:{free_port()}", max_attempts=1, connect_timeout=1
    )
    with pytest.raises(StoreUnavailableError):
        dead.put_once("k", b"x")
