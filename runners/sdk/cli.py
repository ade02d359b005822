"""``ambient-runner <framework>``: the entrypoint of the runner images."""

from __future__ import annotations

import sys

from ambient.runners.sdk import claude_code, script
from ambient.runners.sdk.contract import RUNNER_ERROR, ContractError, termination_message
from ambient.runners.sdk.runtime import Runner


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or args[0] not in ("script", "claude-code"):
        print("usage: ambient-runner script|claude-code", file=sys.stderr)  # noqa: T201
        return 2
    try:
        runner = Runner.from_env()
    except (OSError, ContractError) as exc:
        print(termination_message(RUNNER_ERROR, f"cannot start: {exc}"), file=sys.stderr)  # noqa: T201
        return 1
    if args[0] == "script":
        return script.run(runner)
    return claude_code.run(runner)


if __name__ == "__main__":
    raise SystemExit(main())
