"""Which shard owns a namespace, and when a shard may serve (pure)."""

from __future__ import annotations

import collections
import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ambient.operator import sharding
from ambient.operator.sharding import Claim, Share, Verdict

# Namespace names as Kubernetes allows them (DNS labels).
namespaces = st.from_regex(r"\A[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?\Z")
counts = st.integers(min_value=1, max_value=sharding.MAX_SHARDS)


@given(namespaces, counts)
def test_every_namespace_has_exactly_one_owner_for_any_count(namespace: str, count: int) -> None:
    owners = [i for i in range(count) if Share(i, count).owns(namespace)]
    assert owners == [sharding.owner(namespace, count)]


@given(namespaces, st.integers(min_value=1, max_value=sharding.MAX_SHARDS - 1))
def test_a_new_shard_takes_namespaces_only_for_itself(namespace: str, count: int) -> None:
    # Growing never moves a namespace between two old shards (fewer hand-overs).
    assert sharding.owner(namespace, count + 1) in {sharding.owner(namespace, count), count}


def test_the_owner_is_stable_across_releases() -> None:
    # The hash is part of the contract: changing it would move every namespace on upgrade.
    assert [sharding.owner("team-a", n) for n in range(1, 8)] == [0, 1, 1, 1, 1, 1, 1]


def test_namespaces_spread_evenly() -> None:
    spread = collections.Counter(sharding.owner(f"team-{i}", 4) for i in range(4000))
    assert set(spread) == {0, 1, 2, 3}
    assert all(900 <= n <= 1100 for n in spread.values()), spread


@pytest.mark.parametrize("count", [0, -1, sharding.MAX_SHARDS + 1])
def test_a_count_out_of_range_is_refused(count: int) -> None:
    with pytest.raises(ValueError, match="shard count"):
        sharding.owner("a", count)


def test_a_share_reads_back_what_it_writes_and_nothing_else() -> None:
    assert Share.parse(Share(2, 3).annotation()) == Share(2, 3)
    for bad in ("", "2", "a/3", "2/0", "2/x", "-1/3", "1/65"):
        assert Share.parse(bad) is None, bad


@pytest.mark.parametrize(
    ("data", "count"),
    [({"count": "3"}, 3), ({"count": " 2\n"}, 2), ({"count": "0"}, None), ({"count": "65"}, None),
     ({"count": "two"}, None), ({}, None), (None, None)],
)  # fmt: skip
def test_the_map_count_is_used_only_when_it_is_a_valid_count(
    data: dict[str, str] | None, count: int | None
) -> None:
    assert sharding.map_count(None if data is None else {"data": data}) == count


def claim(lease: str, index: int, count: int, holder: str = "h") -> Claim:
    return Claim(lease, holder, Share(index, count))


def test_decide_serves_only_a_settled_count() -> None:
    me = Share(0, 2)
    assert sharding.decide(me, 2, [claim("s1", 1, 2)], "s0") is Verdict.SERVE
    assert sharding.decide(me, 2, [claim("s0", 0, 2)], "s0") is Verdict.SERVE  # my own Lease
    assert sharding.decide(me, 2, [claim("s2", 2, 3)], "s0") is Verdict.WAIT
    assert sharding.decide(me, 2, [Claim("x", "h", None)], "s0") is Verdict.WAIT
    assert sharding.decide(me, 2, [claim("x", 2, 3, holder="")], "s0") is Verdict.SERVE
    assert sharding.decide(me, 2, [claim("other", 0, 2)], "s0") is Verdict.WAIT  # same index
    assert sharding.decide(me, 3, [], "s0") is Verdict.RESTART
    assert sharding.decide(me, None, [], "s0") is Verdict.WAIT
    assert sharding.decide(Share(2, 2), 2, [], "s2") is Verdict.IDLE


def test_unserved_names_the_shards_nobody_runs() -> None:
    live = [claim("s0", 0, 3), claim("s2", 2, 3), claim("old", 1, 2)]
    assert sharding.unserved(3, live) == [1]


shares = st.tuples(st.integers(0, 4), st.integers(1, 4)).map(lambda t: Share(*t))


@given(
    st.lists(shares, min_size=1, max_size=6),
    st.integers(1, 4),
    st.data(),
)
def test_shards_that_wrote_before_they_read_never_serve_two_owners(
    declared: list[Share], mapped: int, data: st.DataObject
) -> None:
    """Each shard writes its claim, then reads the others. Of two shards, at least one
    reads after the other wrote (the API server is linearizable), so it sees that claim;
    which one is drawn. Whoever then serves, no namespace has two serving owners."""
    leases = [f"lease-{i}" for i in range(len(declared))]
    sees = {i: {i} for i in range(len(declared))}
    for a, b in itertools.combinations(range(len(declared)), 2):
        who = data.draw(st.sampled_from(["a", "b", "both"]))
        if who in ("a", "both"):
            sees[a].add(b)
        if who in ("b", "both"):
            sees[b].add(a)
    serving = [
        i
        for i, share in enumerate(declared)
        if sharding.decide(
            share, mapped, [Claim(leases[j], "h", declared[j]) for j in sees[i]], leases[i]
        )
        is Verdict.SERVE
    ]
    for namespace in ("team-a", "team-b", "ci", "prod-eu", "x"):
        owners = [i for i in serving if declared[i].owns(namespace)]
        assert len(owners) <= 1, (namespace, [declared[i] for i in owners])


@given(counts, st.lists(namespaces, min_size=1, max_size=20))
def test_a_settled_set_of_shards_serves_every_namespace_once(count: int, names: list[str]) -> None:
    declared = [Share(i, count) for i in range(count)]
    claims = [Claim(f"lease-{i}", "h", s) for i, s in enumerate(declared)]
    assert all(
        sharding.decide(s, count, claims, f"lease-{i}") is Verdict.SERVE
        for i, s in enumerate(declared)
    )
    for namespace in names:
        assert sum(s.owns(namespace) for s in declared) == 1
