"""``ambient-runner [<runner>]``: the entrypoint of the runner images."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable
from pathlib import Path

from ambient.runners.agno import runner as agno
from ambient.runners.claude_code import runner as claude_code
from ambient.runners.crewai import runner as crewai
from ambient.runners.langgraph import runner as langgraph
from ambient.runners.n8n import runner as n8n
from ambient.runners.sdk import logs, script
from ambient.runners.sdk.contract import (
    RUNNER_ERROR,
    ContractError,
    apply_default_credentials,
    termination_message,
)
from ambient.runners.sdk.runtime import Runner

RUNNERS: dict[str, Callable[[Runner], int]] = {"script": script.run, "claude-code": claude_code.run}
# The framework runners import their framework only when they run: one image has one.
RUNNERS |= {"langgraph": langgraph.run, "crewai": crewai.run, "agno": agno.run, "n8n": n8n.run}
"""The runners this repository implements; runners/images/Dockerfile builds one image each."""


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    # The image names its runner in AMBIENT_RUNNER, so `docker run IMAGE` needs no argument;
    # the operator's Jobs name it explicitly (runners/registry.yaml).
    if not args and os.environ.get("AMBIENT_RUNNER"):
        args = [os.environ["AMBIENT_RUNNER"]]
    if len(args) != 1 or args[0] not in RUNNERS:
        print(f"usage: ambient-runner {'|'.join(RUNNERS)}", file=sys.stderr)  # noqa: T201
        return 2
    logs.configure()
    apply_default_credentials(os.environ)
    # HOME is on the workspace's emptyDir (the operator sets it); nothing has made it yet.
    with contextlib.suppress(OSError):
        Path.home().mkdir(parents=True, exist_ok=True)
    try:
        runner = Runner.from_env()
    except (OSError, ContractError) as exc:
        print(termination_message(RUNNER_ERROR, f"cannot start: {exc}"), file=sys.stderr)  # noqa: T201
        return 1
    return RUNNERS[args[0]](runner)


if __name__ == "__main__":
    raise SystemExit(main())
