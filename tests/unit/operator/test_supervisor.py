"""The supervisor starts and stops every loop and service together."""

from __future__ import annotations

import asyncio
import logging

import pytest

from ambient.operator import background, metrics
from ambient.operator.settings import OperatorSettings
from ambient.operator.supervisor import Supervisor, every


def test_start_runs_every_loop_and_stop_ends_them_all_then_the_services() -> None:
    async def main() -> list[str]:
        seen: list[str] = []
        ended: list[str] = []

        async def loop(name: str) -> None:
            seen.append(name)
            try:
                await asyncio.sleep(3600)
            finally:
                ended.append(name)

        async def service_start(name: str) -> None:
            seen.append(f"start {name}")

        async def service_stop(name: str) -> None:
            ended.append(f"stop {name}")

        supervisor = Supervisor()
        for name in ("resync", "usage", "retention", "audit-export"):
            supervisor.loop(name, lambda name=name: loop(name))
        for name in ("metrics", "outbox"):
            supervisor.service(
                lambda name=name: service_start(name), lambda name=name: service_stop(name)
            )
        await supervisor.start()
        await asyncio.sleep(0)
        assert sorted(supervisor.running) == [
            "ambient-audit-export",
            "ambient-resync",
            "ambient-retention",
            "ambient-usage",
        ]
        assert seen[:2] == ["start metrics", "start outbox"]  # services before the loops
        await supervisor.stop()
        assert supervisor.running == []
        await supervisor.stop()  # twice is harmless
        return ended

    ended = asyncio.run(main())
    # Every loop ended (its finally ran) before the services stopped, in reverse order.
    assert sorted(ended[:4]) == ["audit-export", "resync", "retention", "usage"]
    assert ended[4:] == ["stop outbox", "stop metrics"]


def test_a_loop_that_failed_does_not_stop_the_others_from_stopping() -> None:
    async def main() -> Supervisor:
        async def broken() -> None:
            raise RuntimeError("boom")

        async def fine() -> None:
            await asyncio.sleep(3600)

        supervisor = Supervisor()
        supervisor.loop("broken", broken)
        supervisor.loop("fine", fine)
        await supervisor.start()
        await asyncio.sleep(0)
        await supervisor.stop()
        return supervisor

    assert asyncio.run(main()).running == []


def test_every_survives_a_failed_round(caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> list[float]:
        rounds: list[int] = []
        sleeps: list[float] = []

        async def action() -> None:
            rounds.append(1)
            if len(rounds) == 1:
                raise RuntimeError("API down")

        async def sleep(seconds: float) -> None:
            sleeps.append(seconds)
            if len(sleeps) == 3:
                raise asyncio.CancelledError

        with pytest.raises(asyncio.CancelledError):
            await every(7.0, action, "usage roll-up", first=True, sleep=sleep)
        assert len(rounds) == 3
        return sleeps

    with caplog.at_level(logging.ERROR):
        assert asyncio.run(main()) == [7.0, 7.0, 7.0]
    assert "usage roll-up failed" in caplog.text


def test_the_background_work_is_registered_by_the_settings(settings: OperatorSettings) -> None:
    om = metrics.create(lambda: ())
    supervisor = Supervisor()
    background.supervise(
        supervisor,
        api=None,  # type: ignore[arg-type]
        settings=settings.model_copy(update={"metrics_port": 0}),
        om=om,
        store=None,
        prefix="",
        remember=lambda _: None,
        now=lambda: None,  # type: ignore[arg-type,return-value]
    )
    assert supervisor.names == ["retention"]  # no store: no export
    off = Supervisor()
    background.supervise(
        off,
        api=None,  # type: ignore[arg-type]
        settings=settings.model_copy(update={"metrics_port": 0, "retention_interval_seconds": 0}),
        om=om,
        store=None,
        prefix="",
        remember=lambda _: None,
        now=lambda: None,  # type: ignore[arg-type,return-value]
    )
    assert off.names == []
