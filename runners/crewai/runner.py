"""``ambient-runner crewai``: a CrewAI crew, kicked off with the Session's task.

Config: ``crew`` (``module:attribute``: a ``Crew`` or a function returning one),
``prompt`` (the task).

``kickoff`` gets the inputs ``prompt``, ``trigger`` (the trigger as JSON, bounded),
``source`` and ``event``, which the crew's task and agent texts use as ``{prompt}``,
``{trigger}``...; a text that names another placeholder fails the run with CrewAI's
message. Each finished task is a ``CrewTaskCompleted`` step (a callback chained before
the task's own), and the agents' token usage (CrewAI's own ``UsageMetrics``) is added
after each task, so a spent budget stops the crew between tasks. CrewAI reports no
cost: the tokens are priced by the cluster admin's table (the context's ``pricing``, from
the runner registry) when one is set, else the cost stays 0.
The result is the crew's final output; the CrewOutput is stored as output.json.
CrewAI's telemetry and tracing are turned off (no traffic leaves for CrewAI's servers).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from ambient.runners.sdk.framework import FrameworkRun, Outcome, drive
from ambient.runners.sdk.runtime import Runner
from ambient.runners.sdk.steps import TRIGGER_CHARS
from ambient.runners.sdk.target import load_target

# Set before crewai is imported: it reads them at import and on each event.
QUIET_ENV = {
    "CREWAI_DISABLE_TELEMETRY": "true",
    "CREWAI_TRACING_ENABLED": "false",
    "OTEL_SDK_DISABLED": "true",
}


def run(runner: Runner) -> int:
    for key, value in QUIET_ENV.items():
        os.environ.setdefault(key, value)
    return drive(runner, "CrewAI", _run_crew)


def kickoff_inputs(prompt: str, trigger: dict[str, Any]) -> dict[str, str]:
    """The inputs CrewAI interpolates into the crew's texts."""
    event = json.dumps(trigger, default=str)[:TRIGGER_CHARS]
    return {
        "prompt": prompt,
        "trigger": event,
        "source": str(trigger.get("source", "")),
        "event": str(trigger.get("event", "")),
    }


def _run_crew(run: FrameworkRun) -> Outcome:
    from crewai import Crew  # noqa: PLC0415

    _, crew = load_target(
        run.config.get("crew"), "crew", lambda o: isinstance(o, Crew), "CrewAI Crew"
    )
    model = _model_name(crew)
    reported = [0, 0]
    stopped: list[BaseException] = []

    def add_usage() -> None:
        metrics = crew.calculate_usage_metrics()
        prompt_tokens, completion_tokens = metrics.prompt_tokens, metrics.completion_tokens
        run.usage(model, prompt_tokens - reported[0], completion_tokens - reported[1], Decimal(0))
        reported[:] = [prompt_tokens, completion_tokens]

    def chained(original: Callable[[Any], Any] | None) -> Callable[[Any], Any]:
        def on_task(output: Any) -> Any:
            run.step(
                "CrewTaskCompleted",
                {
                    "task": output.name or output.description,
                    "agent": output.agent,
                    "output": output.raw,
                },
            )
            try:
                add_usage()
            except BaseException as exc:  # CrewAI may swallow it: kept, re-raised below
                stopped.append(exc)
                raise
            return original(output) if original is not None else None

        return on_task

    for task in crew.tasks:
        task.callback = chained(task.callback)
    result = crew.kickoff(inputs=kickoff_inputs(run.prompt, run.trigger))
    if stopped:
        raise stopped[0]
    add_usage()
    return Outcome(str(result.raw), result.model_dump(mode="json"))


def _model_name(crew: Any) -> str:
    """The agents' model names, as usage records one: distinct, in order."""
    names: list[str] = []
    for agent in crew.agents:
        name = str(getattr(getattr(agent, "llm", None), "model", "") or "")
        if name and name not in names:
            names.append(name)
    return ",".join(names)[:120]
