"""The runner's log lines: JSON with the Session and the delivery's trace id."""

from __future__ import annotations

import json
import logging

import pytest

from ambient.runners.sdk import logs


@pytest.fixture(autouse=True)
def _restore_root() -> object:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield None
    root.handlers[:], root.level = handlers, level


def test_a_line_carries_the_session_and_the_trace_id(capsys: pytest.CaptureFixture[str]) -> None:
    logs.configure(
        {
            "AMBIENT_SESSION_NAME": "github-abc",
            "AMBIENT_SESSION_NAMESPACE": "team-a",
            "AMBIENT_TRACE_ID": "f00d",
        }
    )
    logging.getLogger("ambient.runner").info("ToolUsed %s", "tool=Edit")
    line = json.loads(capsys.readouterr().err)
    assert line["event"] == "ToolUsed tool=Edit"
    assert (line["session"], line["trace_id"], line["component"]) == (
        "team-a/github-abc",
        "f00d",
        "runner",
    )
    assert line["timestamp"].endswith("Z") and line["level"] == "info"


def test_without_a_trace_the_key_is_absent_and_text_is_a_switch(
    capsys: pytest.CaptureFixture[str],
) -> None:
    logs.configure({})
    logging.getLogger("x").warning("plain")
    assert "trace_id" not in json.loads(capsys.readouterr().err)
    logs.configure({"AMBIENT_LOG_FORMAT": "text"})
    logging.getLogger("x").warning("plain")
    assert capsys.readouterr().err.rstrip().endswith("x: plain")
