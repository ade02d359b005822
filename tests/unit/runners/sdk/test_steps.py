"""Step summaries and the bounds on what reaches history (runners/sdk/steps.py)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal

import pytest

from ambient.runners.sdk.steps import (
    TRIGGER_CHARS,
    Steps,
    priced,
    reported_cost,
    summarize,
    task_message,
    trigger_view,
)


def test_summarize_keeps_short_values_and_marks_what_it_cuts() -> None:
    assert summarize("  a\n b ") == "a b"
    assert summarize({"b": 1, "a": [1, 2]}) == '{"a":[1,2],"b":1}'
    cut = summarize("x" * 1000, limit=100)
    assert len(cut) == 100
    assert cut.endswith("... (+900 chars)")


def test_summarize_turns_framework_objects_into_json() -> None:
    @dataclass
    class Message:
        content: str

    class Model:
        def model_dump(self, mode: str) -> dict[str, str]:
            return {"mode": mode}

    assert summarize([Message("hi")]) == '[{"content":"hi","type":"Message"}]'
    assert summarize(Model()) == '{"mode":"json"}'
    loop: list[object] = []
    loop.append(loop)
    assert summarize(loop) == "[[...]]"


def test_history_gets_the_first_steps_then_one_truncation_entry() -> None:
    steps = Steps(max_history=3, max_logged=4)
    written = [steps.add("Node", {"n": i}) for i in range(6)]
    assert [w.event if w else None for w in written] == [
        "Node",
        "Node",
        "StepsTruncated",
        None,
        None,
        None,
    ]
    assert written[2] is not None and written[2].data["after"] == "2"
    assert steps.seen == 6
    lines = steps.jsonl().splitlines()
    assert len(lines) == 5  # 4 kept, then how many were left out
    assert json.loads(lines[-1]) == {"omitted": 2}
    assert json.loads(lines[0])["event"] == "Node"


def test_step_values_are_bounded_in_history() -> None:
    step = Steps().add("Node", {"update": "y" * 5000})
    assert step is not None and len(step.data["update"]) == 500


def test_task_message_has_the_prompt_and_a_bounded_trigger() -> None:
    trigger = trigger_view(
        {"source": "github", "event": "issues.opened", "deliveryId": "d1"}, {"body": "z" * 50000}
    )
    message = task_message("fix it", trigger)
    assert message.startswith("fix it\n\n")
    assert '"source": "github"' in message
    assert len(message) < TRIGGER_CHARS + 200
    assert message.endswith("chars cut)")
    assert task_message("fix it", {"source": "manual"}).endswith('{"source": "manual"}')
    with pytest.raises(ValueError, match="prompt is empty"):
        task_message("  ", trigger)


@pytest.mark.parametrize(
    ("value", "cost"),
    [(None, "0"), ("", "0"), (0.75, "0.75"), ("1.5", "1.5"), ("nan", "0"), ("abc", "0")],
)
def test_reported_cost(value: object, cost: str) -> None:
    assert reported_cost(value) == Decimal(cost)


def test_a_negative_reported_cost_is_refused() -> None:
    with pytest.raises(ValueError, match="negative cost"):
        reported_cost(-1)


def test_priced_by_the_admins_table_only() -> None:
    table = {"gpt-x": {"inputPerMTok": "3", "outputPerMTok": "15"}}
    assert priced(table, "gpt-x", 1_000_000, 100_000) == Decimal("4.5")
    assert priced({}, "gpt-x", 10, 10) is None  # no table: the framework's own cost stands
    assert priced(table, "unlisted", 0, 0) is None  # nothing used, nothing to price
    with pytest.raises(ValueError, match="no price for model 'unlisted'"):
        priced(table, "unlisted", 1, 1)
