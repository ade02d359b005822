"""What every framework runner does around its framework: the task in, the steps, usage
and outputs recorded, the result or the failure out.

A framework runner (runners/<framework>/runner.py) supplies one function that runs its
framework and reports through a ``FrameworkRun``; ``drive`` does the rest, the same way
for each:

- ``<Name>Started`` in history (what is run), then the framework's steps, bounded
  (``steps.Steps``), then ``RunnerSucceeded`` with the summary (``Runner.result``);
- usage as the framework reports it, added as it comes, so a spent budget stops the run
  between two steps (``BudgetExceeded``);
- artifacts: ``steps.jsonl`` (every step, bounded) and ``output.json`` (the framework's
  final output), also when the run fails part-way;
- any error of the framework or of the team's code fails the Session with its message.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from ambient.runners.sdk.contract import (
    BUDGET_EXCEEDED,
    EXIT_BUDGET,
    RUNNER_ERROR,
    BudgetExceededError,
    ContractError,
)
from ambient.runners.sdk.runtime import Runner
from ambient.runners.sdk.steps import Steps, priced, summarize, trigger_view


@dataclass(frozen=True)
class Outcome:
    """What a framework run produced."""

    summary: str
    """The result's text (the last message, the crew's output, the agent's answer)."""
    output: Any
    """The framework's final output, stored as output.json."""


class FrameworkRun:
    """The reporting side a framework function is given."""

    def __init__(self, runner: Runner, prompt: str, trigger: dict[str, Any]) -> None:
        self.runner = runner
        self.prompt = prompt
        self.trigger = trigger
        self.steps = Steps()
        self.output: Any = None
        self.table_cost = Decimal(0)
        """What the admin's price table has charged so far (``settle`` uses it)."""

    @property
    def config(self) -> dict[str, Any]:
        return self.runner.context.config

    def step(self, event: str, detail: dict[str, Any]) -> None:
        """Count a step; the first ones (``steps.MAX_HISTORY_STEPS``) go to history."""
        entry = self.steps.add(event, detail)
        if entry is not None:
            self.runner.history(entry.event, entry.data)

    def usage(self, model: str, input_tokens: int, output_tokens: int, cost: Decimal) -> None:
        """Add usage; raises BudgetExceededError once the Session's budget is spent.

        ``cost`` is what the framework reported. When it reported none and the cluster
        admin's price table (the context's ``pricing``) is set, the tokens are priced by
        it; an unlisted model is then refused (ContractError), never priced at 0."""
        if not cost:
            table = self.runner.context.raw.get("pricing") or {}
            try:
                cost = priced(dict(table), model, input_tokens, output_tokens) or Decimal(0)
            except ValueError as exc:
                raise ContractError(str(exc)) from exc
            self.table_cost += cost
        if input_tokens or output_tokens or cost:
            self.runner.usage(model, input_tokens, output_tokens, cost)

    def settle(self, model: str, input_tokens: int, output_tokens: int, reported: Decimal) -> None:
        """The run's final usage. A cost the framework reported for the whole run wins:
        what the price table charged on the way is replaced by it, never added twice."""
        if not reported:
            self.usage(model, input_tokens, output_tokens, Decimal(0))
            return
        cost = max(reported - self.table_cost, Decimal(0))
        if input_tokens or output_tokens or cost:
            self.runner.usage(model, input_tokens, output_tokens, cost)


def drive(runner: Runner, name: str, body: Callable[[FrameworkRun], Outcome]) -> int:
    """Run ``body`` with the Session's task and record everything; the exit code."""
    config = runner.context.config
    try:
        runner.check_budget()
        prompt = config.get("prompt", "")
        if not isinstance(prompt, str) or not prompt.strip():
            raise ContractError(
                "framework.config.prompt must be the task, a non-empty string "
                "(the routes render it from the event)"
            )
        trigger = trigger_view(runner.context.trigger, runner.payload())
    except BudgetExceededError as exc:
        runner.fail(BUDGET_EXCEEDED, str(exc), EXIT_BUDGET)
    except ContractError as exc:
        runner.fail(RUNNER_ERROR, str(exc))
    run = FrameworkRun(runner, prompt, trigger)
    started = {k: summarize(v, 300) for k, v in config.items() if k != "prompt"}
    runner.history(f"{name}Started", {"prompt": summarize(prompt), **started}, key="start")
    try:
        outcome = body(run)
    except BudgetExceededError as exc:
        _store_outputs(run)
        runner.fail(BUDGET_EXCEEDED, str(exc), EXIT_BUDGET)
    except ContractError as exc:
        _store_outputs(run)
        runner.fail(RUNNER_ERROR, str(exc))
    except Exception as exc:  # the framework's or the team's code: the Session's failure
        _store_outputs(run)
        runner.fail(RUNNER_ERROR, f"{name} failed: {type(exc).__name__}: {exc}")
    run.output = outcome.output
    try:
        _store_outputs(run, strict=True)
    except ContractError as exc:
        runner.fail(RUNNER_ERROR, str(exc))
    runner.result(outcome.summary or f"{name} finished without output", steps=str(run.steps.seen))
    return 0


def _store_outputs(run: FrameworkRun, strict: bool = False) -> None:
    """steps.jsonl and output.json as artifacts. After a failure (strict False) a store
    error is only printed: the failure's own message matters more."""
    if run.runner.context.storage.get("type") == "external":
        return  # references only: there is nowhere to put files
    try:
        with tempfile.TemporaryDirectory(prefix="ambient-out-") as tmp:
            steps = Path(tmp) / "steps.jsonl"
            steps.write_text(run.steps.jsonl())
            run.runner.artifact("steps.jsonl", steps, kind="log")
            if run.output is not None:
                output = Path(tmp) / "output.json"
                text = json.dumps(run.output, default=str, sort_keys=True, indent=1)
                output.write_text(text + "\n")
                run.runner.artifact("output.json", output)
    except Exception as exc:
        if strict:
            raise ContractError(f"could not store the outputs: {exc}") from exc
        print(f"could not store the outputs after the failure: {exc}")  # noqa: T201
