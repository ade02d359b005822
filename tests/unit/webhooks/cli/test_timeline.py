"""A Session's timeline from its history: spans per phase and attempt, marks per entry on
their lanes, and the text and HTML drawn from them."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from ambient.webhooks.cli import timeline

NOW = datetime(2026, 12, 5, 12, 1, tzinfo=UTC)


def entry(seq: int, second: int, entry_id: str, event: str, **data: str) -> dict[str, Any]:
    stamp = f"2026-12-05T12:00:{second:02d}Z"
    return {"seq": seq, "id": entry_id, "timestamp": stamp, "event": event, "data": data}


def session(history: list[dict[str, Any]], **status: Any) -> dict[str, Any]:
    meta = {"name": "fix", "namespace": "team-a", "creationTimestamp": "2026-12-05T12:00:00Z"}
    return {"metadata": meta, "status": {"history": history, **status}}


RETRIED = session(
    [
        entry(0, 0, "created", "SessionCreated"),
        entry(1, 1, "awaiting-approval", "AwaitingApproval"),
        entry(2, 11, "approved", "Approved", approvedBy="alice"),
        entry(3, 12, "fix-a1/created", "WorkloadCreated", jobName="fix-a1"),
        entry(4, 13, "fix-a1/started", "WorkloadStarted", jobName="fix-a1"),
        entry(5, 14, "runner:tool:1", "ToolUse", tool="Edit", input="README.md"),
        entry(6, 20, "fix-a1/failed", "AttemptFailed", jobName="fix-a1", reason="OOMKilled"),
        entry(7, 21, "fix-a2/created", "WorkloadCreated", jobName="fix-a2"),
        entry(8, 30, "fix-a2/succeeded", "WorkloadSucceeded", jobName="fix-a2"),
        entry(9, 31, "notify/0/completed", "NotificationDelivered", url="https://hooks.example"),
    ],
    phase="Completed",
    reason="Succeeded",
    completionTime="2026-12-05T12:00:31Z",
)


def test_spans_show_the_approval_wait_and_each_attempt_with_how_it_ended() -> None:
    line = timeline.build(RETRIED, NOW)
    spans = [(s.label, s.start.second, s.end.second, s.outcome) for s in line.spans]
    assert spans == [
        ("pending", 0, 1, ""),
        ("awaiting approval", 1, 12, ""),
        ("attempt 1 (fix-a1)", 12, 20, "AttemptFailed"),
        ("attempt 2 (fix-a2)", 21, 30, "WorkloadSucceeded"),
    ]
    assert line.seconds == 31


def test_every_entry_is_a_mark_on_its_lane() -> None:
    line = timeline.build(RETRIED, NOW)
    lanes = {m.entry_id: m.lane for m in line.marks}
    assert len(lanes) == 10
    assert lanes["runner:tool:1"] == "runner"
    assert lanes["notify/0/completed"] == "outbound"
    assert lanes["fix-a1/failed"] == "warnings"
    assert lanes["approved"] == "phases"


def test_a_running_session_is_open_until_now() -> None:
    running = session(
        [entry(0, 0, "created", "SessionCreated"), entry(1, 2, "a1", "WorkloadCreated")]
    )
    line = timeline.build(running, NOW)
    assert line.end == NOW
    assert line.spans[-1].label == "attempt 1" and line.spans[-1].end == NOW


def test_text_axis_places_spans_and_marks_in_proportion() -> None:
    line = timeline.build(RETRIED, NOW)
    first, second = line.spans[2], line.spans[3]
    a1 = timeline.bar(line, first.start, first.end, 32)
    a2 = timeline.bar(line, second.start, second.end, 32)
    assert len(a1) == len(a2) == 32
    assert a1.index("█") < a2.index("█")  # the retry comes after the first attempt
    assert timeline.ticks(line, "warnings", 32).count("!") == 1


def test_html_is_self_contained_and_every_entry_hovers_with_its_data() -> None:
    page = timeline.to_html(timeline.build(RETRIED, NOW))
    assert page.startswith("<!doctype html>")
    assert not re.search(r"(src|href)=", page)  # nothing loaded from elsewhere
    assert page.count('class="mark"') == 10
    assert page.count('class="span"') == 4
    assert "approvedBy=alice" in page
    assert "ended by AttemptFailed" in page


def test_html_escapes_what_a_runner_wrote() -> None:
    hostile = session([entry(0, 0, "runner:x", "Step", note="<script>alert(1)</script>")])
    page = timeline.to_html(timeline.build(hostile, NOW))
    assert "<script>" not in page
    assert "&lt;script&gt;" in page
