"""The work queue: deduplication, priorities, FIFO order, one worker per key."""

from __future__ import annotations

import asyncio

from ambient.operator.workqueue import PROGRESS, START, WorkQueue


def _drain(queue: WorkQueue[str]) -> list[tuple[str, int]]:
    async def main() -> list[tuple[str, int]]:
        got = []
        while len(queue):
            key, prio = await queue.get()
            queue.done(key)
            got.append((key, prio))
        return got

    return asyncio.run(main())


def test_start_before_progress_and_fifo_within_each() -> None:
    q: WorkQueue[str] = WorkQueue()
    for key, prio in [("p1", PROGRESS), ("s1", START), ("p2", PROGRESS), ("s2", START)]:
        q.add(key, prio)
    assert _drain(q) == [("s1", START), ("s2", START), ("p1", PROGRESS), ("p2", PROGRESS)]


def test_a_queued_key_is_not_duplicated_and_can_be_promoted() -> None:
    q: WorkQueue[str] = WorkQueue()
    q.add("a")
    q.add("b")
    q.add("a")
    q.add("b", START)
    assert _drain(q) == [("b", START), ("a", PROGRESS)]


def test_a_key_added_while_processing_comes_back_once_after_done() -> None:
    async def main() -> list[str]:
        q: WorkQueue[str] = WorkQueue()
        q.add("a")
        key, _ = await q.get()
        q.add("a")
        q.add("a")
        assert len(q) == 0  # not handed to a second worker while the first has it
        q.done(key)
        assert len(q) == 1
        again, _ = await q.get()
        q.done(again)
        return [key, again]

    assert asyncio.run(main()) == ["a", "a"]


def test_discard_forgets_a_deleted_key() -> None:
    q: WorkQueue[str] = WorkQueue()
    q.add("a")
    q.add("b")
    q.discard("a")
    assert _drain(q) == [("b", PROGRESS)]


def test_get_waits_for_work() -> None:
    async def main() -> tuple[str, int]:
        q: WorkQueue[str] = WorkQueue()
        waiter = asyncio.create_task(q.get())
        await asyncio.sleep(0)
        assert not waiter.done()
        q.add("late", START)
        return await asyncio.wait_for(waiter, 5)

    assert asyncio.run(main()) == ("late", START)
