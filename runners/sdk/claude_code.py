"""The ``claude-code`` runner: drives Claude through Anthropic's official Python SDK.

Config: ``prompt`` (required), ``model`` (must be in the Session's allowed models; the
first allowed one when unset), ``maxTurns`` (default 8), ``maxTokens`` (default 1024),
``tools`` (tool definitions; only those the Session allows are passed), ``pricing``
({inputPerMTok, outputPerMTok} in the budget's currency). The model API's address comes
from ANTHROPIC_BASE_URL and the key from ANTHROPIC_API_KEY (a Secret), as the SDK reads
them. Usage is taken from every response and the runner stops once the budget is spent.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from ambient.runners.sdk.contract import (
    BUDGET_EXCEEDED,
    EXIT_BUDGET,
    RUNNER_ERROR,
    BudgetExceededError,
    ContractError,
)
from ambient.runners.sdk.runtime import Runner

MILLION = Decimal(1_000_000)


def choose_model(requested: str | None, allowed: list[str]) -> str:
    """The model to call: the requested one if allowed, else the first allowed."""
    if not allowed:
        raise ContractError("the Session allows no models (spec.policy.modelConstraints.allowed)")
    if requested and requested not in allowed:
        raise ContractError(f"model {requested!r} is not among the allowed models {allowed}")
    return requested or allowed[0]


def allowed_tools(tools: list[dict[str, Any]], allowed: list[str]) -> list[dict[str, Any]]:
    """Only tool definitions whose name the Session allows (case-insensitive)."""
    names = {a.lower() for a in allowed}
    return [t for t in tools if str(t.get("name", "")).lower() in names]


def cost(pricing: dict[str, Any], input_tokens: int, output_tokens: int) -> Decimal:
    return (
        Decimal(str(pricing.get("inputPerMTok", "0"))) * input_tokens
        + Decimal(str(pricing.get("outputPerMTok", "0"))) * output_tokens
    ) / MILLION


def run(runner: Runner) -> int:
    import anthropic  # noqa: PLC0415 - only the claude-code image installs the SDK

    config = runner.context.config
    try:
        model = choose_model(config.get("model"), runner.context.allowed_models)
        tools = allowed_tools(list(config.get("tools") or []), runner.context.allowed_tools)
        prompt = str(config.get("prompt") or "")
        if not prompt:
            raise ContractError("framework.config.prompt is required")
        runner.check_budget()
        client = anthropic.Anthropic()
        messages: list[dict[str, Any]] = [{"role": "user", "content": prompt}]
        text = ""
        for turn in range(int(config.get("maxTurns", 8))):
            kwargs: dict[str, Any] = {"tools": tools} if tools else {}
            response = client.messages.create(
                model=model,
                max_tokens=int(config.get("maxTokens", 1024)),
                messages=messages,
                **kwargs,
            )
            usage = response.usage
            runner.history(
                "ModelCalled",
                {
                    "model": model,
                    "inputTokens": str(usage.input_tokens),
                    "outputTokens": str(usage.output_tokens),
                    "stopReason": str(response.stop_reason),
                },
                key=f"turn-{turn}",
            )
            runner.usage(
                model,
                usage.input_tokens,
                usage.output_tokens,
                cost(dict(config.get("pricing") or {}), usage.input_tokens, usage.output_tokens),
            )
            text = "".join(getattr(b, "text", "") for b in response.content)
            if response.stop_reason != "tool_use":
                break
            # Tools run in the runner's sandbox in a full deployment; here the turn ends
            # with the model's request recorded, since no tool executor is configured.
            blocks = [b.model_dump(exclude_none=True) for b in response.content]
            messages.append({"role": "assistant", "content": blocks})
            messages.append(
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "tool_result",
                            "tool_use_id": b["id"],
                            "content": "no tool executor is configured for this runner",
                            "is_error": True,
                        }
                        for b in blocks
                        if b.get("type") == "tool_use"
                    ],
                }
            )
    except BudgetExceededError as exc:
        runner.fail(BUDGET_EXCEEDED, str(exc), EXIT_BUDGET)
    except ContractError as exc:
        runner.fail(RUNNER_ERROR, str(exc))
    except anthropic.APIError as exc:
        runner.fail(RUNNER_ERROR, f"the model API failed: {exc}")
    runner.result(text or "no text", model=model)
    return 0
