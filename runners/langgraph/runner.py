"""``ambient-runner langgraph``: a LangGraph graph, streamed node by node.

Config: ``graph`` (``module:attribute``: a compiled graph, a ``StateGraph`` or a function
returning either), ``prompt`` (the task), ``recursionLimit`` (optional, LangGraph's
super-step limit, default 25).

The graph's input is ``{"messages": [the task as a user message], "prompt": ...,
"trigger": {...}}``; LangGraph keeps the keys its state declares and ignores the rest.
Each node's update is a ``GraphNodeUpdated`` step (``stream_mode="updates"``); token
usage comes from LangChain's usage callback (the chat models' ``usage_metadata``), added
after each node so a spent budget stops the graph between nodes. LangChain reports no
cost: the tokens are priced by the cluster admin's table (the context's ``pricing``, from
the runner registry) when one is set, else the cost stays 0.
The result is the last message of the final state (or its ``output``/``result``
key); the final state is stored as output.json.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from ambient.runners.sdk.contract import ContractError
from ambient.runners.sdk.framework import FrameworkRun, Outcome, drive
from ambient.runners.sdk.runtime import Runner
from ambient.runners.sdk.steps import summarize, task_message
from ambient.runners.sdk.target import load_target


def run(runner: Runner) -> int:
    return drive(runner, "LangGraph", _run_graph)


def final_text(state: Any) -> str:
    """The result a person reads: the last message's text, else output/result, else the
    state itself (bounded)."""
    if isinstance(state, dict):
        messages = state.get("messages")
        if isinstance(messages, list) and messages:
            last = messages[-1]
            content = (
                last.get("content") if isinstance(last, dict) else getattr(last, "content", last)
            )
            return content if isinstance(content, str) else summarize(content, 4000)
        for key in ("output", "result", "answer"):
            if key in state:
                value = state[key]
                return value if isinstance(value, str) else summarize(value, 4000)
    return summarize(state, 4000)


def _run_graph(run: FrameworkRun) -> Outcome:
    from langchain_core.callbacks import UsageMetadataCallbackHandler  # noqa: PLC0415
    from langgraph.graph import StateGraph  # noqa: PLC0415
    from langgraph.pregel import Pregel  # noqa: PLC0415

    _, graph = load_target(
        run.config.get("graph"),
        "graph",
        lambda o: isinstance(o, Pregel | StateGraph),
        "LangGraph graph (compiled, or a StateGraph)",
    )
    if isinstance(graph, StateGraph):
        graph = graph.compile()
    limit = run.config.get("recursionLimit", 25)
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= 1000:
        raise ContractError("framework.config.recursionLimit must be an integer from 1 to 1000")
    usage = UsageMetadataCallbackHandler()
    reported: dict[str, tuple[int, int]] = {}
    inputs = {
        "messages": [{"role": "user", "content": task_message(run.prompt, run.trigger)}],
        "prompt": run.prompt,
        "trigger": run.trigger,
    }
    state: Any = None
    for mode, chunk in graph.stream(
        inputs,
        config={"callbacks": [usage], "recursion_limit": limit},
        stream_mode=["updates", "values"],
    ):
        if mode == "values":
            state = chunk
            continue
        for node, update in (chunk or {}).items():
            run.step("GraphNodeUpdated", {"node": node, "update": update})
        _report_usage(run, dict(usage.usage_metadata), reported)
    _report_usage(run, dict(usage.usage_metadata), reported)
    return Outcome(final_text(state), state)


def _report_usage(
    run: FrameworkRun, totals: dict[str, Any], reported: dict[str, tuple[int, int]]
) -> None:
    """Add what each model used since the last report."""
    for model, meta in sorted(totals.items()):
        seen_in, seen_out = reported.get(model, (0, 0))
        now_in, now_out = int(meta.get("input_tokens", 0)), int(meta.get("output_tokens", 0))
        reported[model] = (now_in, now_out)
        run.usage(model, now_in - seen_in, now_out - seen_out, Decimal(0))
