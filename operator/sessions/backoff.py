"""Per-Session retry backoff after failed reconciles, as client-go's rate-limited work
queue does it: exponential with a cap and jitter, reset on success. Pure: the caller
draws the random number and reads the clock.

A Session whose reconcile keeps failing (a broken object, an API error only it meets)
then costs less and less: one attempt at ``base``, then ``2 x base``, ... up to ``cap``,
each spread by up to ``jitter`` either way, so that many Sessions failing together do not
retry in lockstep.
"""

from __future__ import annotations

from dataclasses import dataclass

CONDITION = "ReconcileFailing"
"""The Session condition that shows consecutive failed reconciles (True while failing)."""


@dataclass(frozen=True, slots=True)
class Backoff:
    """The delays: ``base`` seconds after the first failure, doubling up to ``cap``."""

    base: float
    cap: float
    jitter: float = 0.2
    """Fraction of the delay added or taken away at random (0 to 1)."""

    def delay(self, failures: int, draw: float) -> float:
        """Seconds to wait after ``failures`` consecutive failures (1 or more); ``draw`` is
        a uniform random number in [0, 1)."""
        if failures < 1:
            return 0.0
        # 2 ** 60 is past any cap; bounding the exponent keeps the float finite.
        plain = min(self.cap, self.base * 2.0 ** min(failures - 1, 60))
        spread = plain * self.jitter * (2.0 * draw - 1.0)
        return max(0.0, min(self.cap, plain + spread))


def failing_message(failures: int, error: str, retry_in: float) -> str:
    """The condition's message: how many failures, the last error, when the next try is."""
    return f"{failures} consecutive reconcile failure(s); next attempt in {retry_in:.0f}s: {error}"[
        :1024
    ]
