"""How long a status that says only that the work goes on waits to go with the next news."""

from __future__ import annotations


def settle_time(base: float, longest: float, per: int, waiting: int) -> float:
    """The settle time when ``waiting`` Sessions (this one included) hold back such a write.

    A quiet operator waits ``base``. In a burst the wait grows by ``base`` for every ``per``
    Sessions waiting at once, up to ``longest``: then every write competes for the API
    server, pods start and finish late, and a longer wait lets more of them go with the
    next news (often the outcome). Outcomes are never held back, so only progress is seen
    later. 0 (``base``) writes each on its own."""
    if base <= 0:
        return 0.0
    return max(base, min(longest, base * waiting / per))
