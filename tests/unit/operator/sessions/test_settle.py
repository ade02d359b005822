from __future__ import annotations

import pytest

from ambient.operator.sessions.settle import settle_time


@pytest.mark.parametrize(
    ("waiting", "expected"),
    [
        (1, 10.0),  # a quiet operator waits the base time
        (100, 10.0),
        (150, 15.0),  # in a burst, longer: base for every 100 waiting
        (250, 25.0),
        (300, 30.0),
        (10_000, 30.0),  # never longer than the longest
    ],
)
def test_the_settle_time_grows_with_the_sessions_waiting_at_once(
    waiting: int, expected: float
) -> None:
    assert settle_time(10.0, 30.0, 100, waiting) == pytest.approx(expected)


def test_no_settle_time_stays_none_however_busy() -> None:
    assert settle_time(0.0, 30.0, 100, 5_000) == 0.0


def test_a_longest_below_the_base_never_shortens_the_base() -> None:
    assert settle_time(10.0, 5.0, 100, 1) == 10.0
    assert settle_time(10.0, 5.0, 100, 1_000) == 10.0
