"""How a framework run's usage is costed (runners/sdk/framework.py FrameworkRun)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from ambient.runners.sdk.contract import Context, ContractError
from ambient.runners.sdk.framework import FrameworkRun

TABLE = {"m": {"inputPerMTok": "2", "outputPerMTok": "10"}}


class _Runner:
    """Records usage as Runner.usage would receive it."""

    def __init__(self, raw: dict[str, Any]) -> None:
        self.context = Context(raw)
        self.calls: list[tuple[str, int, int, Decimal]] = []

    def usage(self, model: str, tokens_in: int, tokens_out: int, cost: Decimal) -> Decimal:
        self.calls.append((model, tokens_in, tokens_out, cost))
        return sum((c[3] for c in self.calls), Decimal(0))


def _run(raw: dict[str, Any]) -> tuple[FrameworkRun, _Runner]:
    runner = _Runner(raw)
    return FrameworkRun(runner, "task", {}), runner  # type: ignore[arg-type]


def test_tokens_are_priced_by_the_admins_table_and_never_by_the_config() -> None:
    run, runner = _run({"pricing": TABLE, "framework": {"config": {"pricing": {"m": {}}}}})
    run.usage("m", 1_000_000, 100_000, Decimal(0))
    assert runner.calls == [("m", 1_000_000, 100_000, Decimal(3))]


def test_without_a_table_tokens_cost_nothing_and_an_unlisted_model_is_refused() -> None:
    run, runner = _run({})
    run.usage("m", 10, 10, Decimal(0))
    assert runner.calls == [("m", 10, 10, Decimal(0))]
    priced, _ = _run({"pricing": TABLE})
    with pytest.raises(ContractError, match="no price for model 'other'"):
        priced.usage("other", 1, 1, Decimal(0))


def test_a_cost_the_framework_reports_replaces_what_the_table_charged() -> None:
    run, runner = _run({"pricing": TABLE})
    run.usage("m", 1_000_000, 0, Decimal(0))  # 2.00 by the table on the way
    run.settle("m", 0, 0, Decimal("2.50"))  # the provider said 2.50 in all
    assert sum(c[3] for c in runner.calls) == Decimal("2.50")
    nothing_reported, runner2 = _run({"pricing": TABLE})
    nothing_reported.settle("m", 1_000_000, 0, Decimal(0))
    assert runner2.calls == [("m", 1_000_000, 0, Decimal(2))]
