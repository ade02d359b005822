"""One time module: every parse is aware UTC; formatting is the API server's."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from ambient.crds import times

T = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    "text",
    [
        "2026-03-01T12:00:00Z",
        "2026-03-01T12:00:00+00:00",
        "2026-03-01T14:00:00+02:00",
        "2026-03-01T12:00:00",  # no zone: UTC, never naive
        " 2026-03-01T12:00:00Z ",
    ],
)
def test_parse_is_aware_utc(text: str) -> None:
    moment = times.parse(text)
    assert moment == T and moment.tzinfo is UTC


def test_fractions_and_bare_dates() -> None:
    assert times.parse("2026-03-01T12:00:00.250000Z") == T + timedelta(milliseconds=250)
    assert times.parse("2026-03-01") == datetime(2026, 3, 1, tzinfo=UTC)


def test_unreadable_values() -> None:
    with pytest.raises(ValueError):
        times.parse("yesterday")
    assert times.parse_or_none("yesterday") is None
    assert times.parse_or_none("") is None
    assert times.parse_or_none(None) is None
    assert times.parse_or_none("2026-03-01T12:00:00") == T


def test_rfc3339_is_utc_seconds_with_z() -> None:
    tz = timezone(timedelta(hours=2))
    assert times.rfc3339(datetime(2026, 3, 1, 14, 0, 0, 123456, tzinfo=tz)) == (
        "2026-03-01T12:00:00Z"
    )
    assert times.rfc3339(datetime(2026, 3, 1, 12, 0, 0)) == "2026-03-01T12:00:00Z"


def test_round_trip() -> None:
    assert times.parse(times.rfc3339(T)) == T
    assert times.rfc3339(times.parse("2026-03-01T14:00:00+02:00")) == "2026-03-01T12:00:00Z"
