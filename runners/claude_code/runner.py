"""The ``claude-code`` runner: Claude Code itself, driven through ``claude-agent-sdk``.

Config (framework.config): ``prompt`` (required; the task), ``model`` (one of the
Session's allowed models; the first when unset), ``maxTurns`` (default 30),
``repository``/``ref`` (what to check out when the trigger is not a GitHub event),
``push`` (true: push the changes to ambient/<session>) or ``branch`` (push them there).

The run: the trigger's repository is checked out in the workspace (an emptyDir); the
trigger is written beside it for the agent to read; Claude Code (the CLI the SDK's wheel
bundles) works non-interactively with the Session's allowed tools less the namespace's
blocked ones, in the ``dontAsk`` permission mode, capped at what is left of the budget.
Every tool use goes to history as it completes, the whole transcript to the artifact
store, the cost and tokens from Claude Code's own accounting to status.usage.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import json
import os
from pathlib import Path
from typing import Any

from ambient.runners.claude_code import plan
from ambient.runners.claude_code.git import TOKEN_ENV, Git
from ambient.runners.sdk import contract
from ambient.runners.sdk.contract import (
    BUDGET_EXCEEDED,
    EXIT_BUDGET,
    RUNNER_ERROR,
    BudgetExceededError,
    ContractError,
)
from ambient.runners.sdk.runtime import Runner

WORKSPACE_ENV = "AMBIENT_WORKSPACE"
DEFAULT_WORKSPACE = "/workspace"
ALLOW_LOCAL_ENV = "AMBIENT_CHECKOUT_ALLOW_LOCAL"
"""Set to 1 to accept a local path or file:// repository (tests); never set in a Job."""
# Claude Code's switches for a pod without a person: no telemetry, error reports, update
# checks or other traffic besides the model API.
CLI_ENV = {
    "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
    "DISABLE_TELEMETRY": "1",
    "DISABLE_ERROR_REPORTING": "1",
    "DISABLE_AUTOUPDATER": "1",
}
# Credentials the runner itself needs and the agent's tools must not see.
_PRIVATE_ENV = (TOKEN_ENV, "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_ACCESS_KEY_ID")


@dataclasses.dataclass
class Run:
    """One run's inputs and what it observed."""

    model: str
    prompt: str
    workdir: Path
    state: Path
    git: Git | None
    base: str = ""
    tools_used: int = 0
    pending: dict[str, tuple[str, dict[str, Any]]] = dataclasses.field(default_factory=dict)
    result: Any = None
    stderr: collections.deque[str] = dataclasses.field(
        default_factory=lambda: collections.deque(maxlen=20)
    )


def run(runner: Runner) -> int:
    """Check out, run Claude Code, record, push; exit codes as the contract says."""
    config = runner.context.config
    try:
        the_run, options = _prepare(runner, config)
        try:
            asyncio.run(_drive(runner, the_run, options))
        except ContractError:
            _store_transcript(runner, the_run)  # what Claude Code did before it failed
            raise
        return _finish(runner, the_run, config)
    except BudgetExceededError as exc:
        runner.fail(BUDGET_EXCEEDED, str(exc), EXIT_BUDGET)
    except ContractError as exc:
        runner.fail(RUNNER_ERROR, str(exc))
    except OSError as exc:  # the workspace, git or the CLI could not be started
        runner.fail(RUNNER_ERROR, f"the runner could not work in its workspace: {exc}")


def _prepare(runner: Runner, config: dict[str, Any]) -> tuple[Run, Any]:
    from claude_agent_sdk import ClaudeAgentOptions  # noqa: PLC0415 - the image's own SDK

    ctx = runner.context
    prompt = str(config.get("prompt") or "")
    if not prompt:
        raise ContractError("framework.config.prompt is required")
    model = plan.choose_model(config.get("model"), ctx.allowed_models)
    tools = plan.tool_plan(ctx.allowed_tools, ctx.blocked_tools)
    turns = plan.max_turns(config)
    runner.check_budget()
    left = contract.budget_left(ctx.budget, runner.spent())

    root = Path(os.environ.get(WORKSPACE_ENV, DEFAULT_WORKSPACE))
    state = root / ".ambient"
    state.mkdir(parents=True, exist_ok=True)
    Path.home().mkdir(parents=True, exist_ok=True)
    payload = runner.payload()
    trigger_file = state / "trigger.json"
    trigger_file.write_text(json.dumps({**ctx.trigger, "payload": payload}, indent=2))
    target = plan.checkout_target(
        ctx.trigger, payload, config, allow_local=os.environ.get(ALLOW_LOCAL_ENV) == "1"
    )
    workdir = root / "repo"
    workdir.mkdir(parents=True, exist_ok=True)
    the_run = Run(model=model, prompt=prompt, workdir=workdir, state=state, git=None)
    if target is not None:
        the_run.git = Git(workdir, os.environ.get(TOKEN_ENV, ""))
        the_run.base = the_run.git.clone(target)
        runner.history(
            "RepositoryCheckedOut",
            {"repository": target.url, "ref": target.ref, "commit": the_run.base},
            key="checkout",
        )
    if ctx.storage.get("type") != "external":
        _ = runner.store  # opened now: a store that cannot open fails before any spend
    for name in _PRIVATE_ENV:  # the store's client and Git hold what they need
        os.environ.pop(name, None)

    options = ClaudeAgentOptions(
        tools=tools.tools,
        allowed_tools=tools.allowed,
        disallowed_tools=tools.disallowed,
        permission_mode=plan.PERMISSION_MODE,
        max_turns=turns,
        max_budget_usd=plan.budget_usd(left),
        model=model,
        cwd=str(workdir),
        add_dirs=[str(state)],
        # No settings, hooks or CLAUDE.md from the checkout: the repository is not trusted.
        setting_sources=[],
        system_prompt={
            "type": "preset",
            "preset": "claude_code",
            "append": plan.system_append(
                ctx.trigger, str(trigger_file), target, push=plan.push_branch(config, ctx.name)
            ),
        },
        env=CLI_ENV,
        stderr=the_run.stderr.append,
    )
    runner.history(
        "ClaudeCodeStarted",
        {
            "model": model,
            "tools": ",".join(tools.tools),
            "disallowed": ",".join(tools.disallowed),
            "maxTurns": str(turns),
            "maxBudgetUsd": "" if left is None else contract.cents(left),
        },
        key="claude-start",
    )
    return the_run, options


async def _drive(runner: Runner, the_run: Run, options: Any) -> None:
    """Stream Claude Code's messages: transcript line by line, tool uses to history."""
    from claude_agent_sdk import (  # noqa: PLC0415
        AssistantMessage,
        ClaudeSDKError,
        ResultMessage,
        ToolResultBlock,
        ToolUseBlock,
        UserMessage,
        query,
    )

    transcript = the_run.state / "transcript.jsonl"
    with transcript.open("w") as out:
        try:
            async for message in query(prompt=the_run.prompt, options=options):
                out.write(_line(message) + "\n")
                out.flush()
                if isinstance(message, AssistantMessage):
                    for block in message.content:
                        if isinstance(block, ToolUseBlock):
                            the_run.pending[block.id] = (block.name, dict(block.input))
                elif isinstance(message, UserMessage) and isinstance(message.content, list):
                    for block in message.content:
                        if isinstance(block, ToolResultBlock):
                            _tool_used(runner, the_run, block)
                elif isinstance(message, ResultMessage):
                    the_run.result = message
        except ClaudeSDKError as exc:
            # After an error result the CLI exits non-zero on purpose; the result says why.
            if the_run.result is None:
                tail = " | ".join(the_run.stderr)[-1000:]
                raise ContractError(f"Claude Code failed: {exc} {tail}".strip()) from exc
    for name, tool_input in the_run.pending.values():  # asked for, never answered
        _record_tool(runner, the_run, name, tool_input, error=True, content="no result")


def _tool_used(runner: Runner, the_run: Run, block: Any) -> None:
    name, tool_input = the_run.pending.pop(block.tool_use_id, ("?", {}))
    _record_tool(
        runner, the_run, name, tool_input, error=bool(block.is_error), content=block.content
    )


def _record_tool(
    runner: Runner,
    the_run: Run,
    name: str,
    tool_input: dict[str, Any],
    *,
    error: bool,
    content: Any,
) -> None:
    the_run.tools_used += 1
    data = plan.tool_entry(name, tool_input, error, content)
    runner.history("ToolUsed", data, key=f"tool-{the_run.tools_used}")


def _line(message: Any) -> str:
    if dataclasses.is_dataclass(message) and not isinstance(message, type):
        body = dataclasses.asdict(message)
    else:
        body = {"raw": message}
    return json.dumps({"type": type(message).__name__, **body}, default=str)


def _finish(runner: Runner, the_run: Run, config: dict[str, Any]) -> int:
    """Transcript, usage and result; the budget's and Claude Code's failures end it."""
    data: dict[str, str] = {
        "model": the_run.model,
        "transcript": _store_transcript(runner, the_run),
    }
    result = the_run.result
    if result is None:
        raise ContractError("Claude Code ended without a result")
    used = plan.spend(result.total_cost_usd, result.model_usage, result.usage)
    total = runner.client.update(
        lambda s: contract.add_usage(
            s, the_run.model, used.input_tokens, used.output_tokens, used.cost
        )
    )
    runner.history(
        "ClaudeCodeFinished",
        {
            "subtype": str(result.subtype),
            "turns": str(result.num_turns),
            "costUsd": str(used.cost),
            "inputTokens": str(used.input_tokens),
            "outputTokens": str(used.output_tokens),
        },
        key="claude-end",
    )
    if result.subtype == plan.BUDGET_RESULT:
        raise BudgetExceededError(
            f"spent {contract.cents(total)} of the Session's budget {runner.context.budget}"
        )
    runner.check_budget(total)
    if result.is_error:
        reason = result.result or ", ".join(result.errors or []) or str(result.subtype)
        raise ContractError(f"Claude Code stopped: {reason}")
    branch = plan.push_branch(config, runner.context.name)
    if the_run.git is not None:
        changed = the_run.git.changed_files(the_run.base)
        data["changedFiles"] = ", ".join(changed)
        if branch and changed:
            the_run.git.commit_and_push(branch, _commit_message(runner, the_run))
            data["branch"] = branch
    runner.result(str(result.result or "done"), **data)
    return 0


def _store_transcript(runner: Runner, the_run: Run) -> str:
    """The transcript as an artifact; its location ('' when the store keeps references
    only or there is none)."""
    path = the_run.state / "transcript.jsonl"
    if runner.context.storage.get("type") == "external" or not path.exists():
        return ""
    return runner.artifact("transcript.jsonl", path, "transcript").location


def _commit_message(runner: Runner, the_run: Run) -> str:
    first = the_run.prompt.strip().splitlines()[0][:72] if the_run.prompt.strip() else "changes"
    return f"{first}\n\nBy Claude Code in Session {runner.context.namespace}/{runner.context.name}."
