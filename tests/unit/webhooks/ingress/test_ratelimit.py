from __future__ import annotations

from ambient.webhooks.ingress.ratelimit import RateLimiter, retry_after


def test_burst_then_refill_per_key() -> None:
    limiter = RateLimiter(rate=2.0, burst=3)
    assert [limiter.take("k", 0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    wait = limiter.take("k", 0.0)
    assert wait == 0.5
    assert limiter.take("other", 0.0) == 0.0  # buckets are per key
    assert limiter.take("k", 0.5) == 0.0  # one token refilled after 1/rate seconds


def test_retry_after_is_whole_seconds_at_least_one() -> None:
    assert retry_after(0.01) == "1"
    assert retry_after(2.2) == "3"
