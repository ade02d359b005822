"""Filing Sessions and Jobs in kopf's indexes, and finding one namespace's entries."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ambient.operator import filing


def test_an_object_is_filed_under_its_label_and_its_namespace() -> None:
    assert filing.entry("team-a", "s1", {"v": 1}) == {("team-a", "s1"): {"v": 1}, "team-a": "s1"}


def test_a_namespaces_entries_are_its_own_and_only_those_still_indexed(
    new_index: Callable[[], Any],
) -> None:
    index = new_index()
    index.file("team-a", "s1", "a1")
    index.file("team-a", "s2", "a2")
    index.file("team-b", "s1", "b1")  # the same label in another namespace
    index.file("team-ab", "s3", "ab3")  # a namespace whose name starts like another
    assert dict(filing.entries(index, "team-a")) == {"s1": ["a1"], "s2": ["a2"]}
    assert sorted(filing.values(index, "team-b")) == ["b1"]
    # A label whose entry is gone (kopf drops emptied stores) yields nothing.
    index.pop(("team-a", "s2"))
    assert sorted(filing.values(index, "team-a")) == ["a1"]
    assert filing.values(index, "nobody") == []


def test_two_objects_sharing_a_label_are_both_found() -> None:
    # kopf's store under a namespace holds each object's label: duplicates when two
    # Sessions' names shorten to one label (or a Session has Jobs of two attempts).
    index: dict[Any, list[Any]] = {
        ("ns", "long"): ["job-a1", "job-a2"],
        "ns": ["long", "long"],
    }
    assert filing.labels(index, "ns") == {"long"}
    assert filing.values(index, "ns") == ["job-a1", "job-a2"]
