"""``ambient-runner agno``: an Agno agent (or team), run with the Session's task.

Config: ``agent`` (``module:attribute``: an ``Agent``, a ``Team``, or a function
returning one), ``prompt`` (the task).

The agent gets the task as one message (the prompt, then the trigger as JSON) and runs
with ``stream=True, stream_events=True``. Its run events are steps (``AgnoRunEvent``:
tool calls with their arguments and result, model requests with their tokens,
reasoning, memory...; content deltas are left out). Tokens are added after each model
request (priced by the admin's table when one is set), so a spent budget stops the agent
between requests; at the end the run's own metrics (``RunCompletedEvent.metrics``)
settle tokens, and the cost Agno reports (its providers' cost when they give one)
replaces the table's. A ``RunError`` event fails the Session with its
message. The result is the run's content; the run output is stored as output.json.
"""

from __future__ import annotations

import os
from decimal import Decimal
from typing import Any

from ambient.runners.sdk.framework import FrameworkRun, Outcome, drive
from ambient.runners.sdk.runtime import Runner
from ambient.runners.sdk.steps import reported_cost, summarize, task_message
from ambient.runners.sdk.target import load_target

QUIET_ENV = {"AGNO_TELEMETRY": "false"}
"""Set before agno is imported: no telemetry leaves for Agno's servers."""

SKIPPED = ("Content", "ContentDelta", "ContentCompleted", "ModelRequestStarted")
"""Events that are pieces of the answer (streamed text), not steps."""


def run(runner: Runner) -> int:
    for key, value in QUIET_ENV.items():
        os.environ.setdefault(key, value)
    return drive(runner, "Agno", _run_agent)


def event_detail(event: Any) -> dict[str, Any] | None:
    """What a step records of one Agno run event; None for streamed pieces of text."""
    name = str(getattr(event, "event", type(event).__name__))
    if name.endswith(SKIPPED):
        return None
    detail: dict[str, Any] = {"event": name}
    tool = getattr(event, "tool", None)
    if tool is not None:
        detail["tool"] = getattr(tool, "tool_name", "") or ""
        detail["args"] = getattr(tool, "tool_args", None) or {}
        if getattr(tool, "result", None) is not None:
            detail["result"] = tool.result
        if getattr(tool, "tool_call_error", None):
            detail["error"] = "true"
    for key in ("model", "input_tokens", "output_tokens"):
        value = getattr(event, key, None)
        if value is not None:
            detail[key] = value
    if name.endswith("RunError"):
        detail["message"] = summarize(getattr(event, "content", "") or "")
    return detail


def _run_agent(run: FrameworkRun) -> Outcome:
    from agno.agent import Agent  # noqa: PLC0415
    from agno.team import Team  # noqa: PLC0415

    _, agent = load_target(
        run.config.get("agent"),
        "agent",
        lambda o: isinstance(o, Agent | Team),
        "Agno Agent or Team",
    )
    model = str(getattr(getattr(agent, "model", None), "id", "") or "")
    # A team's members stream their own RunCompleted; the team's own end is TeamRunCompleted.
    final = "TeamRunCompleted" if isinstance(agent, Team) else "RunCompleted"
    tokens = [0, 0]
    completed: Any = None
    for event in agent.run(task_message(run.prompt, run.trigger), stream=True, stream_events=True):
        detail = event_detail(event)
        if detail is None:
            continue
        name = detail["event"]
        run.step("AgnoRunEvent", detail)
        if name.endswith("RunError"):
            raise RuntimeError(getattr(event, "content", None) or "the agent's run failed")
        if name.endswith("ModelRequestCompleted"):
            got_in = int(getattr(event, "input_tokens", 0) or 0)
            got_out = int(getattr(event, "output_tokens", 0) or 0)
            run.usage(str(getattr(event, "model", "") or model), got_in, got_out, Decimal(0))
            tokens[0] += got_in
            tokens[1] += got_out
        if name == final:
            completed = event
    if completed is None:
        raise RuntimeError(f"the agent's run ended without a {final} event")
    metrics = getattr(completed, "metrics", None)
    total_in = int(getattr(metrics, "input_tokens", 0) or 0)
    total_out = int(getattr(metrics, "output_tokens", 0) or 0)
    run.settle(
        model,
        max(total_in - tokens[0], 0),
        max(total_out - tokens[1], 0),
        reported_cost(getattr(metrics, "cost", None)),
    )
    content = getattr(completed, "content", None)
    text = content if isinstance(content, str) else summarize(content, 4000)
    output = completed.to_dict() if hasattr(completed, "to_dict") else str(completed)
    return Outcome(text, output)
