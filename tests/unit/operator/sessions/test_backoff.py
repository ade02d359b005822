"""The retry backoff: doubling from base to the cap, jitter within its bounds."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from ambient.operator.sessions.backoff import Backoff, failing_message


def test_the_delay_doubles_from_base_up_to_the_cap_without_jitter_at_the_middle_draw() -> None:
    backoff = Backoff(base=5, cap=60)
    assert [backoff.delay(n, 0.5) for n in range(1, 7)] == [5, 10, 20, 40, 60, 60]


def test_no_failure_means_no_wait() -> None:
    assert Backoff(base=5, cap=60).delay(0, 0.9) == 0.0


def test_jitter_spreads_the_delay_both_ways() -> None:
    backoff = Backoff(base=10, cap=1000, jitter=0.2)
    assert backoff.delay(1, 0.0) == 8.0
    assert round(backoff.delay(1, 0.999999), 3) == 12.0


@given(
    failures=st.integers(min_value=1, max_value=10_000),
    draw=st.floats(min_value=0, max_value=1, exclude_max=True),
    base=st.floats(min_value=0.01, max_value=600),
    cap=st.floats(min_value=0.01, max_value=86_400),
)
def test_the_delay_is_never_negative_nor_past_the_cap(
    failures: int, draw: float, base: float, cap: float
) -> None:
    delay = Backoff(base=base, cap=cap).delay(failures, draw)
    assert 0.0 <= delay <= cap


def test_the_message_is_bounded_and_says_the_count() -> None:
    message = failing_message(3, "x" * 5000, 20.0)
    assert message.startswith("3 consecutive reconcile failure(s); next attempt in 20s: ")
    assert len(message) == 1024
