"""The NamespacePolicy list+watch loop, over a fake synchronous client."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from typing import Any, cast

from ambient.common.kube import errors
from ambient.common.kube.client import Kube
from ambient.webhooks.policy_watch import POLICIES, watch_policies


def _policy(name: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": name}}


class FakeKube:
    """Lists twice (the first watch ends in an ERROR event, as after 410 Gone), fails once,
    then stops the loop."""

    def __init__(self, stop: threading.Event) -> None:
        self.stop = stop
        self.lists = 0
        self.watched_from: list[str] = []

    def call(self, method: str, path: str) -> dict[str, Any]:
        assert (method, path) == ("GET", POLICIES)
        self.lists += 1
        if self.lists == 2:
            raise errors.UnavailableError("the API server answered 503", 503)
        if self.lists == 4:
            self.stop.set()
        return {"metadata": {"resourceVersion": str(self.lists)}, "items": [_policy("a")]}

    def watch(
        self, path: str, resource_version: str, *, timeout_seconds: int
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        self.watched_from.append(resource_version)
        yield "ADDED", _policy("b")
        yield "BOOKMARK", {"metadata": {"resourceVersion": "9"}}
        yield "DELETED", _policy("a")
        yield "ERROR", {"code": 410}
        yield "ADDED", _policy("never")


class Sink:
    def __init__(self) -> None:
        self.seen: list[tuple[str, Any]] = []

    def replace_all(self, items: list[Mapping[str, Any]]) -> None:
        self.seen.append(("replace", [i["metadata"]["name"] for i in items]))

    def upsert(self, item: Mapping[str, Any]) -> None:
        self.seen.append(("upsert", item["metadata"]["name"]))

    def remove(self, item: Mapping[str, Any]) -> None:
        self.seen.append(("remove", item["metadata"]["name"]))


def test_list_then_watch_and_list_again_after_an_error_or_a_failure() -> None:
    stop = threading.Event()
    fake, sink = FakeKube(stop), Sink()
    watch_policies(cast(Kube, fake), sink, stop, retry_seconds=0)
    once = [("replace", ["a"]), ("upsert", "b"), ("remove", "a")]
    assert sink.seen == once + once + [("replace", ["a"])]
    # the fourth watch is opened, and left at its first event: stop was set
    assert fake.watched_from == ["1", "3", "4"]
