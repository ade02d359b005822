"""The runner entrypoint, the one runner Dockerfile and the registry name the same runners."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ambient.runners.registry import Registry
from ambient.runners.sdk import cli

DOCKERFILE = Path(__file__).resolve().parents[4] / "runners" / "images" / "Dockerfile"


def test_the_dockerfile_builds_exactly_the_runners_the_cli_runs() -> None:
    # The `case "${RUNNER}"` arms, bar the catch-all that fails the build.
    arms = set(re.findall(r"^\s+([a-z][a-z0-9-]*)\) extra=", DOCKERFILE.read_text(), re.M))
    assert arms == set(cli.RUNNERS)


def test_every_runner_is_in_the_registry_and_its_command_names_it(registry: Registry) -> None:
    for name in cli.RUNNERS:
        entry = registry.frameworks[name]
        assert entry.versions[entry.default_version].command == ["ambient-runner", name]


@pytest.mark.parametrize("argv", [["autogen"], ["script", "extra"], []])
def test_unknown_or_missing_runner_is_a_usage_error(
    argv: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("AMBIENT_RUNNER", raising=False)
    assert cli.main(argv) == 2
    assert (
        "usage: ambient-runner script|claude-code|langgraph|crewai|agno|n8n"
        in capsys.readouterr().err
    )


def test_the_images_runner_comes_from_ambient_runner_when_no_argument_is_given(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # No context file here, so the chosen runner fails to start with the contract's message
    # (exit 1) instead of the usage error (exit 2).
    monkeypatch.setenv("AMBIENT_RUNNER", "script")
    monkeypatch.setenv("AMBIENT_CONTEXT_FILE", "/nonexistent/session.json")
    assert cli.main([]) == 1
    assert "cannot start" in capsys.readouterr().err
