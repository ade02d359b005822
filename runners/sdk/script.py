"""The ``script`` runner: runs framework.config.command and reports what it produced.

Config: ``command`` (list of strings, required), ``outputDir`` (default
/workspace/out: every file in it becomes an artifact), ``usage`` (optional
{model, inputTokens, outputTokens} to report, for tooling that knows its tokens). The
tokens are priced by the cluster admin's table (the registry's ``pricing``, in the
context file); a ``cost`` the Session's author writes there is ignored.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from ambient.runners.sdk import contract
from ambient.runners.sdk.contract import (
    BUDGET_EXCEEDED,
    EXIT_BUDGET,
    RUNNER_ERROR,
    BudgetExceededError,
    ContractError,
)
from ambient.runners.sdk.runtime import Runner


def run(runner: Runner) -> int:
    config = runner.context.config
    command = config.get("command")
    if not isinstance(command, list) or not command or not all(isinstance(c, str) for c in command):
        runner.fail(RUNNER_ERROR, "framework.config.command must be a non-empty list of strings")
    out_dir = Path(str(config.get("outputDir", "/workspace/out")))
    out_dir.mkdir(parents=True, exist_ok=True)
    try:
        runner.check_budget()
        runner.history("ScriptStarted", {"command": " ".join(command)[:1000]}, key="script-start")
        proc = subprocess.run(command, check=False, cwd=str(out_dir.parent))
        usage = config.get("usage")
        if isinstance(usage, dict):
            model = str(usage.get("model", ""))
            tokens_in, tokens_out = (
                int(usage.get("inputTokens", 0)),
                int(usage.get("outputTokens", 0)),
            )
            cost = contract.price(runner.context.pricing, model, tokens_in, tokens_out)
            runner.usage(model, tokens_in, tokens_out, cost)
        for path in sorted(p for p in out_dir.rglob("*") if p.is_file()):
            runner.artifact(str(path.relative_to(out_dir)), path)
    except BudgetExceededError as exc:
        runner.fail(BUDGET_EXCEEDED, str(exc), EXIT_BUDGET)
    except ContractError as exc:
        runner.fail(RUNNER_ERROR, str(exc))
    if proc.returncode != 0:
        runner.fail(
            RUNNER_ERROR, f"the command exited with code {proc.returncode}", proc.returncode
        )
    runner.result("the command exited 0", exitCode="0")
    return 0
