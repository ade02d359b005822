"""Fixtures for the webhook unit tests."""

from __future__ import annotations

import pytest

from ambient.operator.objectstore import AlreadyExistsError


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

    def list_keys(self, prefix: str) -> list[str]:
        return sorted(k for k in self.objects if k.startswith(prefix))

    def get(self, key: str) -> bytes:
        return self.objects[key]

    def delete(self, key: str) -> None:
        self.objects.pop(key, None)


@pytest.fixture
def memory_store() -> MemoryStore:
    return MemoryStore()
