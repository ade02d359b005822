"""A Session's life on a time axis, from its ``status.history``. Pure: a body in, a
``Timeline`` out, then text for a terminal or a self-contained HTML page (an SVG whose
marks show their history entry on hover).

Lanes, top to bottom: the phases (created, awaiting approval, queued, each attempt's
workload from creation to its end), the runner's own entries (tool uses, steps, its
result), what went out (notifications, replies) and the warnings. Each history entry is a
mark on its lane at its timestamp, so nothing in the history is left out of the picture.
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ambient.crds import events, times

PHASES = "phases"
RUNNER = "runner"
OUTBOUND = "outbound"
WARNINGS = "warnings"
LANES = (PHASES, RUNNER, OUTBOUND, WARNINGS)

# Where a span of the phases lane starts, and which events end it.
_OPENS = {
    "SessionCreated": "pending",
    "AwaitingApproval": "awaiting approval",
    "Queued": "queued",
    "WorkloadCreated": "attempt",
}
_ENDS_ATTEMPT = {
    "WorkloadSucceeded",
    "WorkloadFailed",
    "WorkloadLost",
    "AttemptFailed",
    "TimedOut",
    "Cancelled",
    "PolicyViolation",
}


@dataclass(frozen=True)
class Mark:
    """One history entry at its moment."""

    at: datetime
    lane: str
    event: str
    entry_id: str
    data: Mapping[str, str]

    @property
    def warning(self) -> bool:
        return events.is_warning(self.event)


@dataclass(frozen=True)
class Span:
    """A stretch of the Session's life: waiting for approval, queued, an attempt running."""

    start: datetime
    end: datetime
    label: str
    outcome: str = ""
    """For an attempt: the event that ended it (empty while it runs)."""


@dataclass
class Timeline:
    name: str
    namespace: str
    phase: str
    reason: str
    start: datetime
    end: datetime
    spans: list[Span] = field(default_factory=list)
    marks: list[Mark] = field(default_factory=list)

    @property
    def seconds(self) -> float:
        return max((self.end - self.start).total_seconds(), 0.001)

    def offset(self, moment: datetime) -> float:
        """Seconds from the Session's start."""
        return (moment - self.start).total_seconds()


def _lane(entry_id: str, event: str) -> str:
    if entry_id.startswith("runner:"):
        return RUNNER
    if event.startswith(("Notification", "Reply")) or entry_id.startswith(("notify/", "reply/")):
        return OUTBOUND
    if events.is_warning(event):
        return WARNINGS
    return PHASES


def build(body: Mapping[str, Any], now: datetime) -> Timeline:
    """The timeline of one Session body; ``now`` ends what is still open."""
    meta = body.get("metadata") or {}
    status = body.get("status") or {}
    marks = []
    for entry in status.get("history") or []:
        at = times.parse_or_none(entry.get("timestamp"))
        if at is None:
            continue
        event = str(entry.get("event") or "")
        entry_id = str(entry.get("id") or "")
        marks.append(Mark(at, _lane(entry_id, event), event, entry_id, entry.get("data") or {}))
    marks.sort(key=lambda m: m.at)
    created = times.parse_or_none(meta.get("creationTimestamp"))
    start = min([m.at for m in marks] + ([created] if created else [])) if marks else created
    start = start or now
    done = times.parse_or_none(status.get("completionTime"))
    end = max([m.at for m in marks] + [done or now, start])
    timeline = Timeline(
        name=str(meta.get("name") or ""),
        namespace=str(meta.get("namespace") or ""),
        phase=str(status.get("phase") or "Pending"),
        reason=str(status.get("reason") or ""),
        start=start,
        end=end,
        marks=marks,
    )
    timeline.spans = _spans(marks, end)
    return timeline


def _spans(marks: list[Mark], end: datetime) -> list[Span]:
    """The phases lane: each opening event runs until the next one opens, an attempt until
    the event that ended it."""
    spans: list[Span] = []
    open_label: str | None = None
    open_at: datetime | None = None
    attempt = 0
    for mark in marks:
        if mark.lane not in {PHASES, WARNINGS}:
            continue
        label = _OPENS.get(mark.event)
        if label is not None:
            if open_label is not None and open_at is not None:
                spans.append(Span(open_at, mark.at, open_label))
            if label == "attempt":
                attempt += 1
                job = mark.data.get("jobName", "")
                label = f"attempt {attempt}" + (f" ({job})" if job else "")
            open_label, open_at = label, mark.at
        elif mark.event in _ENDS_ATTEMPT and open_label is not None and open_at is not None:
            spans.append(Span(open_at, mark.at, open_label, mark.event))
            open_label = open_at = None
    if open_label is not None and open_at is not None:
        spans.append(Span(open_at, end, open_label))
    return spans


def describe(mark: Mark, limit: int = 160) -> str:
    """One line on an entry: its event and its data, bounded."""
    data = ", ".join(f"{k}={v}" for k, v in mark.data.items())
    text = f"{mark.event} {data}".strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


def bar(timeline: Timeline, start: datetime, end: datetime, width: int) -> str:
    """A span as characters on a ``width``-wide axis."""
    left = round(timeline.offset(start) / timeline.seconds * (width - 1))
    right = max(left + 1, round(timeline.offset(end) / timeline.seconds * (width - 1)) + 1)
    return " " * left + "█" * (right - left) + " " * max(0, width - right)


def ticks(timeline: Timeline, lane: str, width: int) -> str:
    """A lane's marks as characters on the axis (``!`` for a warning)."""
    cells = [" "] * width
    for mark in timeline.marks:
        if mark.lane != lane:
            continue
        at = round(timeline.offset(mark.at) / timeline.seconds * (width - 1))
        cells[at] = "!" if mark.warning else "●"
    return "".join(cells)


# --- HTML ------------------------------------------------------------------------------

_COLOURS = {
    "pending": "#9aa5b1",
    "awaiting approval": "#f0b429",
    "queued": "#a3a3ff",
    "attempt": "#3ebd93",
    "failed": "#e12d39",
}
_LANE_Y = {lane: 60 + i * 44 for i, lane in enumerate(LANES)}


def _colour(span: Span) -> str:
    if span.outcome and span.outcome != "WorkloadSucceeded":
        return _COLOURS["failed"]
    return _COLOURS.get(span.label.split(" (")[0].rstrip("0123456789 "), _COLOURS["attempt"])


def to_html(timeline: Timeline, width: int = 1000) -> str:
    """A self-contained page: the SVG timeline (hover a span or a mark for its entry) and
    the history as a table, nothing loaded from elsewhere."""
    left, right = 110, 20
    axis = width - left - right

    def x(moment: datetime) -> float:
        return left + timeline.offset(moment) / timeline.seconds * axis

    height = _LANE_Y[LANES[-1]] + 50
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'font-family="sans-serif" font-size="12">'
    ]
    for lane, y in _LANE_Y.items():
        parts.append(f'<text x="8" y="{y + 4}" fill="#334">{lane}</text>')
        parts.append(f'<line x1="{left}" y1="{y}" x2="{left + axis}" y2="{y}" stroke="#dde"/>')
    for span in timeline.spans:
        x0, x1 = x(span.start), max(x(span.end), x(span.start) + 2)
        tip = f"{span.label}: {span.start.isoformat()} to {span.end.isoformat()}"
        tip += f" ({(span.end - span.start).total_seconds():.1f}s)"
        tip += f", ended by {span.outcome}" if span.outcome else ""
        parts.append(
            f'<rect class="span" x="{x0:.1f}" y="{_LANE_Y[PHASES] - 9}" width="{x1 - x0:.1f}" '
            f'height="18" rx="3" fill="{_colour(span)}"><title>{html.escape(tip)}</title></rect>'
        )
    for mark in timeline.marks:
        colour = "#e12d39" if mark.warning else "#1f2933"
        tip = f"{mark.at.isoformat()} (+{timeline.offset(mark.at):.1f}s) {mark.entry_id}\n"
        tip += describe(mark, 2000)
        parts.append(
            f'<circle class="mark" cx="{x(mark.at):.1f}" cy="{_LANE_Y[mark.lane]}" r="5" '
            f'fill="{colour}"><title>{html.escape(tip)}</title></circle>'
        )
    seconds = timeline.seconds
    for i in range(6):
        at = left + axis * i / 5
        parts.append(
            f'<text x="{at:.1f}" y="{height - 12}" fill="#667" text-anchor="middle">'
            f"+{seconds * i / 5:.0f}s</text>"
        )
    parts.append("</svg>")
    rows = "".join(
        f"<tr><td>+{timeline.offset(m.at):.1f}s</td><td>{html.escape(m.entry_id)}</td>"
        f"<td>{html.escape(m.event)}</td><td>{html.escape(describe(m, 2000))}</td></tr>"
        for m in timeline.marks
    )
    title = html.escape(f"{timeline.namespace}/{timeline.name}")
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>Session {title}</title><style>"
        "body{font-family:sans-serif;margin:24px;color:#1f2933}"
        "table{border-collapse:collapse;font-size:12px}"
        "td{border-bottom:1px solid #eee;padding:3px 8px;vertical-align:top}"
        "circle:hover,rect:hover{stroke:#000;stroke-width:2}"
        "</style></head><body>"
        f"<h1>Session {title}</h1>"
        f"<p>{html.escape(timeline.phase)} {html.escape(timeline.reason)}, "
        f"{timeline.start.isoformat()} to {timeline.end.isoformat()} "
        f"({timeline.seconds:.1f}s, {len(timeline.marks)} history entries)</p>"
        + "".join(parts)
        + f"<table>{rows}</table></body></html>"
    )
