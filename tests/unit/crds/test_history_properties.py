"""History transitions under generated histories (issue 17, deliverable 4): appending
entries in order is always allowed, and any change, removal or reordering of an entry
already written is always refused; a runner's appended entries are its own or refused."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ambient.crds.events import OPERATOR_EVENTS
from ambient.crds.history import runner_entry_problems, transition_problems
from ambient.crds.models import HistoryEntry

EXAMPLES = int(os.environ.get("AMBIENT_FUZZ_EXAMPLES", "300"))
ids = st.sampled_from(["runner:a", "runner:b", "created", "notify/x"]) | st.from_regex(
    r"[A-Za-z0-9][A-Za-z0-9._:/-]{0,10}", fullmatch=True
)
events = st.sampled_from(sorted(OPERATOR_EVENTS)) | st.from_regex(
    r"[A-Z][A-Za-z0-9]{0,10}", fullmatch=True
)


@st.composite
def histories(draw: st.DrawFn, start: int = 0, max_size: int = 6) -> list[HistoryEntry]:
    n = draw(st.integers(0, max_size))
    return [
        HistoryEntry(
            seq=start + i,
            id=draw(ids),
            timestamp="2026-03-10T00:00:00Z",
            event=draw(events),
            data=draw(st.dictionaries(st.text(max_size=4), st.text(max_size=8), max_size=2)),
        )
        for i in range(n)
    ]


@settings(max_examples=EXAMPLES, suppress_health_check=list(HealthCheck))
@given(st.data())
def test_appending_in_order_is_allowed_and_rewriting_is_not(data: st.DataObject) -> None:
    old = data.draw(histories())
    added = data.draw(histories(start=len(old)))
    assert transition_problems(old, [], [*old, *added], []) == []
    if old:
        i = data.draw(st.integers(0, len(old) - 1))
        changed = old[i].model_copy(update={"event": old[i].event + "X"})
        assert transition_problems(old, [], [*old[:i], changed, *old[i + 1 :], *added], [])
        assert transition_problems(old, [], [*old[:i], *old[i + 1 :]], [])  # removed
        if len(old) > 1:
            assert transition_problems(old, [], list(reversed(old)), [])


@settings(max_examples=EXAMPLES, suppress_health_check=list(HealthCheck))
@given(st.data())
def test_a_runner_appends_only_its_own_prefix_and_vocabulary(data: st.DataObject) -> None:
    old = data.draw(histories())
    added = data.draw(histories(start=len(old)))
    problems = runner_entry_problems(old, [*old, *added])
    forged = [e for e in added if not e.id.startswith("runner:") or e.event in OPERATOR_EVENTS]
    assert bool(problems) == bool(forged)
