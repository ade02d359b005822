"""A key's last use goes to the policy's status at most once an hour, off the delivery's
path, and a failed write is tried again with a later delivery."""

from __future__ import annotations

import asyncio

from ambient.webhooks.ingress.keyusage import KeyUsage

DIGEST = "ab" * 32


def test_one_write_an_hour_per_key_and_namespace() -> None:
    writes: list[tuple[str, str, str]] = []

    async def record(namespace: str, prefix: str, stamp: str) -> None:
        writes.append((namespace, prefix, stamp))

    async def main() -> None:
        usage = KeyUsage(record, interval=3600)
        usage.seen("team-a", DIGEST, 0.0)
        usage.seen("team-a", DIGEST, 10.0)  # within the hour: nothing
        usage.seen("team-b", DIGEST, 10.0)  # another namespace's entry
        usage.seen("team-a", DIGEST, 3601.0)  # the next hour
        await asyncio.sleep(0)

    asyncio.run(main())
    assert [(ns, prefix) for ns, prefix, _ in writes] == [
        ("team-a", DIGEST[:16]),
        ("team-b", DIGEST[:16]),
        ("team-a", DIGEST[:16]),
    ]
    assert all(stamp.endswith("Z") for _, _, stamp in writes)


def test_a_failed_write_is_tried_again_with_the_next_delivery() -> None:
    calls = 0

    async def record(namespace: str, prefix: str, stamp: str) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("API server unavailable")

    async def main() -> None:
        usage = KeyUsage(record, interval=3600)
        usage.seen("team-a", DIGEST, 0.0)
        await asyncio.sleep(0.01)
        usage.seen("team-a", DIGEST, 1.0)
        await asyncio.sleep(0.01)

    asyncio.run(main())
    assert calls == 2
