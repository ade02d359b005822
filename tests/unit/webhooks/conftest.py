"""Fixtures for the webhook unit tests."""

from __future__ import annotations

import pytest

from ambient.operator.objectstore import AlreadyExistsError, ContentConflictError


class MemoryStore:
    """The artifact store's semantics (create-only puts, prefix listing) in memory."""

    bucket = "memory"

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}
        self.fail = False

    def put_new(self, key: str, body: bytes) -> None:
        if self.fail:
            raise ConnectionError("store unreachable")
        if key in self.objects:
            raise AlreadyExistsError(key)
        self.objects[key] = body

    def put_once(self, key: str, body: bytes) -> bool:
        if key in self.objects:
            if self.objects[key] != body:
                raise ContentConflictError(key)
            return False
        self.put_new(key, body)
        return True

    def location(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"

    def list_keys(self, prefix: str) -> list[str]:
        return sorted(k for k in self.objects if k.startswith(prefix))

    def get(self, key: str) -> bytes:
        return self.objects[key]

    def delete(self, key: str) -> None:
        self.objects.pop(key, None)


@pytest.fixture
def memory_store() -> MemoryStore:
    return MemoryStore()
