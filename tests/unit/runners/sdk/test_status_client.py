"""StatusClient.update: conflicts re-read, and a full history window waits, never drops."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonpatch
import pytest

from ambient.runners.sdk import contract, status_client
from ambient.runners.sdk.status_client import ApiError, Connection, StatusClient


class FakeApi(StatusClient):
    """The Session as a dict; JSON patches follow a script of answers (None: apply it, as
    the API server would, refused with 409 when its resourceVersion is not the stored
    one)."""

    def __init__(self, history: list[dict[str, Any]], answers: list[ApiError | None]) -> None:
        super().__init__(Connection("https://127.0.0.1:1", Path("/dev/null"), None), "ns", "s")
        self.session: dict[str, Any] = {
            "metadata": {"name": "s", "namespace": "ns", "resourceVersion": "1"},
            "status": {"history": history},
        }
        self.answers = answers
        self.reads = 0
        self.patches: list[Any] = []

    def _request(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        if method == "GET":
            self.reads += 1
            if self.reads == 3:  # the operator archives meanwhile
                self.session["status"]["history"] = self.session["status"]["history"][500:]
            import copy  # noqa: PLC0415

            return copy.deepcopy(self.session)
        assert method == "PATCH"
        answer = self.answers.pop(0) if self.answers else None
        if answer is not None:
            raise answer
        patched = jsonpatch.apply_patch(self.session, body)
        if patched["metadata"]["resourceVersion"] != self.session["metadata"]["resourceVersion"]:
            raise ApiError(409, "the object has been modified")
        self.patches.append(body)
        patched["metadata"]["resourceVersion"] = str(
            int(patched["metadata"]["resourceVersion"]) + 1
        )
        self.session = patched
        return patched


def _full() -> list[dict[str, Any]]:
    return [
        {"seq": i, "id": f"e{i}", "timestamp": "t", "event": "E", "data": {}} for i in range(1000)
    ]


def test_an_append_to_a_full_window_waits_for_the_archive() -> None:
    api = FakeApi(_full(), [])
    slept: list[float] = []
    api.update(
        lambda s: contract.append_history(s, "x", "Progress", {}, "t"),
        sleep=slept.append,
        clock=lambda: 0.0,
    )
    history = api.session["status"]["history"]
    assert history[-1]["id"] == "runner:x" and history[-1]["seq"] == 1000
    assert slept == [0.5, 1.0]


def test_the_api_servers_max_items_answer_is_waited_out_too() -> None:
    full = ApiError(422, 'Session.ambient.ai "s" is invalid: status.history: Too many: 1001')
    api = FakeApi(_full()[:999], [full])
    api.update(
        lambda s: contract.append_history(s, "x", "Progress", {}, "t"),
        sleep=lambda _: None,
        clock=lambda: 0.0,
    )
    assert api.session["status"]["history"][-1]["id"] == "runner:x"


def test_waiting_gives_up_with_the_error_after_the_deadline() -> None:
    api = FakeApi(_full(), [])
    api.reads = -100  # the operator never archives
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    with pytest.raises(contract.HistoryFullError):
        api.update(
            lambda s: contract.append_history(s, "x", "Progress", {}, "t"),
            sleep=sleep,
            clock=lambda: now[0],
        )
    assert now[0] >= status_client.HISTORY_WAIT_SECONDS


def test_other_refusals_are_not_retried() -> None:
    api = FakeApi([], [ApiError(403, "forbidden")])
    with pytest.raises(ApiError, match="403"):
        api.update(lambda s: contract.append_history(s, "x", "E", {}, "t"))


def test_a_write_carries_what_it_appends_and_a_concurrent_writer_is_not_overwritten() -> None:
    """A JSON patch of the new entry, not the whole history (the window holds up to 1,000
    entries); another writer's entry stored between the read and the write makes it 409,
    so the runner reads again and appends after it."""
    api = FakeApi(_full()[:500], [])
    real = api._request

    def racing(method: str, path: str, body: Any = None) -> Any:
        if method == "PATCH" and len(api.patches) == 0 and not getattr(api, "raced", False):
            api.raced = True  # type: ignore[attr-defined]
            contract.append_history(api.session["status"], "op", "Other", {}, "t")
            api.session["metadata"]["resourceVersion"] = "2"
        return real(method, path, body)

    api._request = racing  # type: ignore[method-assign]
    api.update(lambda s: contract.append_history(s, "x", "Progress", {}, "t"))
    history = api.session["status"]["history"]
    assert [e["id"] for e in history[-2:]] == ["runner:op", "runner:x"]
    assert [e["seq"] for e in history[-2:]] == [500, 501]
    (patch,) = api.patches
    assert patch[0] == {"op": "replace", "path": "/metadata/resourceVersion", "value": "2"}
    assert [op["path"] for op in patch[1:]] == ["/status/history/-"]
