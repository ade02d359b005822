"""Shared builders for the unit tests: Sessions, settings, the shipped runner registry.

Helpers are exposed as fixtures (factories) because, with ``--import-mode=importlib``,
test modules cannot import a sibling helper module.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import settings as hypothesis_settings

from ambient.common.store.s3 import AlreadyExistsError, ContentConflictError
from ambient.crds.models import Session, SessionStatus
from ambient.operator import filing
from ambient.operator.settings import OperatorSettings
from ambient.runners import registry as runner_registry

NOW = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)

# Property tests (issue 17, deliverable 4): `make test` runs them derandomized (the same
# examples every run, so a failure reproduces and CI never flakes); `make fuzz` loads the
# "fuzz" profile, random and many more examples (AMBIENT_FUZZ_EXAMPLES per test).
FUZZ_EXAMPLES = int(os.environ.get("AMBIENT_FUZZ_EXAMPLES", "2000"))
hypothesis_settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
hypothesis_settings.register_profile(
    "fuzz", derandomize=False, deadline=None, max_examples=FUZZ_EXAMPLES, print_blob=True
)
hypothesis_settings.load_profile(os.environ.get("AMBIENT_HYPOTHESIS_PROFILE", "ci"))

MakeSession = Callable[..., Session]


def session_body(
    *,
    name: str = "review-pr-42",
    namespace: str = "team-alpha",
    uid: str = "5b1c2f4e-0000-4000-8000-000000000001",
    generation: int = 1,
    framework: str = "script",
    version: str = "latest",
    config: dict[str, Any] | None = None,
    payload: dict[str, Any] | None = None,
    delivery_id: str | None = "d-1",
    approval_required: bool = False,
    timeout_seconds: int | None = None,
    annotations: dict[str, str] | None = None,
    status: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A Session as the API server would hand it to the operator (camelCase)."""
    trigger: dict[str, Any] = {
        "source": "github",
        "event": "pull_request.opened",
        "payload": payload if payload is not None else {"number": 42},
    }
    if delivery_id is not None:
        trigger["deliveryId"] = delivery_id
    spec: dict[str, Any] = {
        "trigger": trigger,
        "framework": {"type": framework, "version": version, "config": config or {}},
        "policy": {
            "modelConstraints": {"allowed": ["claude-3-sonnet"], "budget": "10.00"},
            "toolConstraints": {"allowed": ["Bash"]},
            "approvalRequired": approval_required,
        },
    }
    if timeout_seconds is not None:
        spec["timeoutSeconds"] = timeout_seconds
    body: dict[str, Any] = {
        "apiVersion": "ambient.ai/v1alpha1",
        "kind": "Session",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": uid,
            "generation": generation,
            "resourceVersion": "100",
            "creationTimestamp": "2026-03-01T11:59:00Z",
            "annotations": annotations or {},
        },
        "spec": spec,
    }
    if status is not None:
        body["status"] = status
    return body


@pytest.fixture
def make_body() -> Callable[..., dict[str, Any]]:
    """Factory for raw Session bodies."""
    return session_body


class FakeIndex(dict[Any, list[Any]]):
    """kopf's index as the operator's indexers fill it (operator/filing.py): one object per
    (namespace, label), its label also filed under the namespace."""

    def file(self, namespace: str, label: str, value: Any) -> None:
        for key, found in filing.entry(namespace, label, value).items():
            if key == namespace:
                if found not in self.setdefault(key, []):
                    self[key].append(found)
            else:
                self[key] = [found]

    def unfile(self, namespace: str, label: str) -> None:
        self.pop((namespace, label), None)
        self[namespace] = [found for found in self.get(namespace, []) if found != label]
        if not self[namespace]:
            del self[namespace]  # kopf drops an emptied store


@pytest.fixture
def new_index() -> Callable[[], FakeIndex]:
    """An empty ``FakeIndex``."""
    return FakeIndex


@pytest.fixture
def make_session() -> MakeSession:
    """Factory for validated Session objects; keyword arguments as ``session_body``."""

    def make(**kwargs: Any) -> Session:
        return Session.model_validate(session_body(**kwargs))

    return make


@pytest.fixture
def with_status() -> Callable[[Session, SessionStatus | None], Session]:
    """The Session as it reads after the operator wrote ``status`` (None: unchanged)."""

    def advance(session: Session, status: SessionStatus | None) -> Session:
        if status is None:
            return session
        return session.model_copy(update={"status": status.model_copy(deep=True)})

    return advance


@pytest.fixture
def now() -> datetime:
    return NOW


@pytest.fixture
def later() -> Callable[[int], datetime]:
    """``later(n)``: n minutes after NOW."""
    return lambda minutes: NOW + timedelta(minutes=minutes)


@pytest.fixture
def settings(monkeypatch: pytest.MonkeyPatch) -> Iterator[OperatorSettings]:
    """Default settings, unaffected by AMBIENT_* variables of the shell running the tests."""
    for key in list(os.environ):
        if key.startswith("AMBIENT_"):
            monkeypatch.delenv(key)
    yield OperatorSettings()


@pytest.fixture(scope="session")
def registry() -> runner_registry.Registry:
    return runner_registry.load()


@pytest.fixture
def runner(registry: runner_registry.Registry) -> runner_registry.ResolvedRunner:
    return runner_registry.resolve(registry, "script")


class MemoryStore:
    """The artifact store's semantics (create-only puts, prefix listing) in memory;
    ``fail`` makes it unreachable."""

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


@pytest.fixture(autouse=True)
def _logging_restored() -> Iterator[None]:
    """Entry points (the runner's CLI, the servers' mains) configure the process's logging;
    each test gets it back as it was, so one test's handlers never leak into another's."""
    root = logging.getLogger()
    audit = logging.getLogger("ambient.ingress.audit")
    saved = (root.handlers[:], root.level, audit.handlers[:], audit.propagate, audit.level)
    yield
    root.handlers[:], root.level = saved[0], saved[1]
    audit.handlers[:], audit.propagate, audit.level = saved[2], saved[3], saved[4]
