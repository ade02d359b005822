"""How the operator files Sessions and runner Jobs in kopf's indexes, and finds one
namespace's entries again.

An indexer files each object twice: its value under (namespace, Session label), and the
label under the bare namespace. kopf writes both in one step, so a namespace's labels are
exactly as current as the index. One namespace's entries are then found without walking
every key of every namespace: that walk, once per admission decision, was the operator's
largest cost at 10,000 Sessions over 100 namespaces (docs/benchmarks.md, issue 19). A
namespace (a string) never equals a (namespace, label) tuple, so the two kinds of keys
never meet.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Iterator, Mapping
from typing import Any, TypeVar

V = TypeVar("V")

# kopf's index as the handlers see it: key -> the values of every object filed there.
Index = Mapping[Any, Iterable[Any]]


def entry(namespace: str, label: str, value: V) -> dict[Hashable, V | str]:
    """What an indexer returns for one object: its value under (namespace, label), and
    its label under the namespace."""
    return {(namespace, label): value, namespace: label}


def labels(index: Index, namespace: str) -> set[str]:
    """The Session labels filed in the namespace (a set: several objects share one)."""
    return {str(label) for label in index.get(namespace, ())}


def entries(index: Index, namespace: str) -> Iterator[tuple[str, Iterable[Any]]]:
    """(label, values) of every label filed in the namespace."""
    for label in labels(index, namespace):
        values = index.get((namespace, label))
        if values:
            yield label, values


def values(index: Index, namespace: str) -> list[Any]:
    """Every value filed in the namespace."""
    return [value for _, found in entries(index, namespace) for value in found]
