"""The checkout's git: the token reaches git's credential helper, never argv or a URL."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from ambient.runners.claude_code import git as runner_git
from ambient.runners.claude_code.plan import Checkout
from ambient.runners.sdk.contract import ContractError

TOKEN = "ghs_secret-value"


def test_git_asks_the_helper_for_the_token(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(runner_git.TOKEN_ENV, "from-the-pod-env")
    git = runner_git.Git(tmp_path, TOKEN)
    filled = subprocess.run(
        ["git", "credential", "fill"],
        input="protocol=https\nhost=github.com\npath=o/r.git\n\n",
        env=git.env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "username=x-access-token" in filled
    assert f"password={TOKEN}" in filled
    assert TOKEN not in runner_git._HELPER and git.env["GIT_TERMINAL_PROMPT"] == "0"


def test_without_a_token_git_has_none(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(runner_git.TOKEN_ENV, "from-the-pod-env")
    git = runner_git.Git(tmp_path, "")
    assert runner_git.TOKEN_ENV not in git.env and "GIT_CONFIG_COUNT" not in git.env


def _origin(tmp: Path) -> str:
    seed = tmp / "seed"
    subprocess.run(["git", "init", "-q", "-b", "main", str(seed)], check=True)
    (seed / "a.txt").write_text("a\n")
    env_args = ["-c", "user.name=t", "-c", "user.email=t@example.invalid"]
    subprocess.run(["git", "-C", str(seed), "add", "."], check=True)
    subprocess.run(["git", "-C", str(seed), *env_args, "commit", "-qm", "a"], check=True)
    origin = tmp / "origin.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(seed), str(origin)], check=True)
    return f"file://{origin}"


def test_clone_change_and_push(tmp_path: Path) -> None:
    url = _origin(tmp_path)
    git = runner_git.Git(tmp_path / "w")
    base = git.clone(Checkout(url, "main"))
    (tmp_path / "w" / "a.txt").write_text("b\n")
    (tmp_path / "w" / "new.txt").write_text("n\n")
    assert git.changed_files(base) == ["a.txt", "new.txt"]
    git.commit_and_push("ambient/s1", "change")
    shown = subprocess.run(
        ["git", "--git-dir", url.removeprefix("file://"), "show", "ambient/s1:new.txt"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert shown == "n\n"


def test_a_missing_ref_is_a_clear_error(tmp_path: Path) -> None:
    url = _origin(tmp_path)
    with pytest.raises(ContractError, match="git fetch failed"):
        runner_git.Git(tmp_path / "w").clone(Checkout(url, "nope"))
