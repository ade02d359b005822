"""The repository checkout and push, with git over https and the namespace's token.

The token never appears in a URL, an argument or a log line: git asks a credential helper
(set through GIT_CONFIG_* variables, so not even in argv) that prints it from the
environment of the git process alone. Git never prompts (GIT_TERMINAL_PROMPT=0).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from ambient.runners.claude_code.plan import Checkout
from ambient.runners.sdk.contract import ContractError

TOKEN_ENV = "AMBIENT_GIT_TOKEN"  # noqa: S105 - the variable's name
"""The GitHub token from the Secret ambient-source-credentials (key github-token); the
operator's Job sets it, optional."""
AUTHOR = ("Ambient", "ambient@users.noreply.invalid")
TIMEOUT_SECONDS = 600
_HELPER = (
    '!f() { test "$1" = get || exit 0; echo username=x-access-token; '
    'echo "password=${' + TOKEN_ENV + '}"; }; f'
)


class Git:
    """git in one working directory, with the token only in its own processes' env."""

    def __init__(self, workdir: Path, token: str = "") -> None:
        self.workdir = workdir
        env = {k: v for k, v in os.environ.items() if k != TOKEN_ENV}
        env.update(
            {
                "GIT_TERMINAL_PROMPT": "0",
                "GIT_AUTHOR_NAME": AUTHOR[0],
                "GIT_AUTHOR_EMAIL": AUTHOR[1],
                "GIT_COMMITTER_NAME": AUTHOR[0],
                "GIT_COMMITTER_EMAIL": AUTHOR[1],
            }
        )
        if token:
            env.update(
                {
                    TOKEN_ENV: token,
                    "GIT_CONFIG_COUNT": "1",
                    "GIT_CONFIG_KEY_0": "credential.helper",
                    "GIT_CONFIG_VALUE_0": _HELPER,
                }
            )
        self.env = env

    def __call__(self, *args: str, check: bool = True) -> str:
        try:
            proc = subprocess.run(
                ["git", *args],
                cwd=self.workdir,
                env=self.env,
                capture_output=True,
                text=True,
                timeout=TIMEOUT_SECONDS,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise ContractError(f"git {args[0]} took longer than {TIMEOUT_SECONDS}s") from exc
        if check and proc.returncode != 0:
            # git's own message names the remote and ref, never the helper's output.
            raise ContractError(f"git {args[0]} failed: {proc.stderr.strip()[-500:]}")
        return proc.stdout

    def clone(self, target: Checkout) -> str:
        """Fetch the ref, check out its head (or the event's commit when the ref still
        has it), and return the commit checked out."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        self("init", "--quiet")
        self("remote", "add", "origin", target.url)
        self("fetch", "--quiet", "--no-tags", "origin", f"refs/heads/{target.ref}")
        # The event's commit when the fetched branch still holds it, else the branch's head.
        commit = target.sha if target.sha and self._has(target.sha) else "FETCH_HEAD"
        self("checkout", "--quiet", "-B", target.ref, commit)
        return self("rev-parse", "HEAD").strip()

    def _has(self, sha: str) -> bool:
        probe = subprocess.run(
            ["git", "cat-file", "-e", f"{sha}^{{commit}}"],
            cwd=self.workdir,
            env=self.env,
            capture_output=True,
            timeout=60,
            check=False,
        )
        return probe.returncode == 0

    def changed_files(self, base: str) -> list[str]:
        """Files that differ from the checked-out commit: committed by the agent, staged,
        unstaged or new."""
        self("add", "--all", "--intent-to-add")
        names = self("diff", "--name-only", base).splitlines()
        return sorted({n for n in names if n})

    def commit_and_push(self, branch: str, message: str) -> None:
        """Commit what is not committed yet and push HEAD to the branch."""
        self("add", "--all")
        if self("status", "--porcelain").strip():
            self("commit", "--quiet", "-m", message)
        self("push", "--quiet", "origin", f"HEAD:refs/heads/{branch}")
