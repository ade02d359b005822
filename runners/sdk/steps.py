"""Pure parts shared by the framework runners (langgraph, crewai, agno, n8n): the task
they are given, bounded summaries of what a framework did, and how many of its steps
reach the Session's history.

A framework can take thousands of steps; the Session's history is a bounded window that
other writers share. So at most ``MAX_HISTORY_STEPS`` steps become history entries (then
one ``StepsTruncated`` entry says how many more there were), each value cut to
``SUMMARY_CHARS``; the full list, bounded by ``MAX_LOGGED_STEPS``, is stored as the
``steps.jsonl`` artifact.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

MAX_HISTORY_STEPS = 40
"""Steps recorded in status.history; later ones only in the steps artifact."""
MAX_LOGGED_STEPS = 2000
"""Steps kept in the steps.jsonl artifact; later ones are counted, not kept."""
SUMMARY_CHARS = 500
"""The most characters of a step's summary in history."""
LOGGED_CHARS = 8000
"""The most characters of one step's detail in the steps artifact."""
TRIGGER_CHARS = 16000
"""The most characters of the trigger's JSON put into the task message."""


def summarize(value: Any, limit: int = SUMMARY_CHARS) -> str:
    """A short, single-line text for any value: strings as they are, the rest as compact
    JSON (objects a framework returns fall back to ``str``), cut at ``limit`` with a
    marker that says how much was left out."""
    if isinstance(value, str):
        text = value
    else:
        try:
            text = json.dumps(value, default=_plain, sort_keys=True, separators=(",", ":"))
        except ValueError:  # circular structures
            text = str(value)
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    more = f"... (+{len(text) - limit} chars)"
    return text[: max(limit - len(more), 0)] + more


def _plain(value: Any) -> Any:
    """JSON for framework objects: pydantic models and dataclasses by their fields."""
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        try:
            return dump(mode="json")
        except Exception:  # a model whose fields do not serialise
            return str(value)
    to_dict = getattr(value, "to_dict", None)
    if callable(to_dict):
        try:
            return to_dict()
        except Exception:
            return str(value)
    content = getattr(value, "content", None)
    if isinstance(content, str):  # chat messages
        return {"type": type(value).__name__, "content": content}
    return str(value)


def trigger_view(trigger: dict[str, Any], payload: dict[str, Any]) -> dict[str, Any]:
    """The trigger as a framework sees it: where the event came from and its payload."""
    return {
        "source": str(trigger.get("source", "")),
        "event": str(trigger.get("event", "")),
        "deliveryId": str(trigger.get("deliveryId", "")),
        "payload": payload,
    }


def task_message(prompt: str, trigger: dict[str, Any]) -> str:
    """The task as one user message: the prompt, then the trigger as JSON (bounded)."""
    if not prompt.strip():
        raise ValueError("framework.config.prompt is empty: the runner has no task to give")
    event = json.dumps(trigger, default=str)  # source and event first, the payload last
    if len(event) > TRIGGER_CHARS:
        event = event[:TRIGGER_CHARS] + f"... (+{len(event) - TRIGGER_CHARS} chars cut)"
    return f"{prompt}\n\nThe event that started this task (JSON):\n{event}"


def reported_cost(value: Any) -> Decimal:
    """A cost a framework reported (float, str, None) as money; missing or invalid is 0,
    negative is refused (it would lower the Session's spend)."""
    if value is None or value == "":
        return Decimal(0)
    try:
        cost = Decimal(str(value))
    except InvalidOperation:
        return Decimal(0)
    if not cost.is_finite():
        return Decimal(0)
    if cost < 0:
        raise ValueError(f"the framework reported a negative cost {value!r}")
    return cost


def priced(
    pricing: dict[str, Any], model: str, input_tokens: int, output_tokens: int
) -> Decimal | None:
    """Tokens priced by the cluster admin's table (the context's ``pricing``, from the
    runner registry: model -> {inputPerMTok, outputPerMTok}); None when there is no table.
    A model the table does not list is refused, never priced at 0. framework.config is
    never read: a Session's author cannot set prices."""
    if not pricing or not (input_tokens or output_tokens):
        return None
    entry = pricing.get(model)
    if not isinstance(entry, dict):
        raise ValueError(
            f"the runner registry has no price for model {model!r}; the cluster admin sets "
            "one under this framework version's pricing"
        )
    per_million = (
        Decimal(str(entry.get("inputPerMTok", "0"))) * input_tokens
        + Decimal(str(entry.get("outputPerMTok", "0"))) * output_tokens
    )
    return per_million / Decimal(1_000_000)


@dataclass(frozen=True)
class Step:
    """One step as history records it: an event name and short values."""

    event: str
    data: dict[str, str]


@dataclass
class Steps:
    """Counts a run's steps and decides which reach history (``add`` returns them)."""

    max_history: int = MAX_HISTORY_STEPS
    max_logged: int = MAX_LOGGED_STEPS
    seen: int = 0
    log: list[dict[str, Any]] = field(default_factory=list)

    def add(self, event: str, detail: dict[str, Any]) -> Step | None:
        """Count a step; the history entry to write, or None past the cap. The step
        that reaches the cap is replaced by a ``StepsTruncated`` entry."""
        self.seen += 1
        if len(self.log) < self.max_logged:
            self.log.append(
                {"n": self.seen, "event": event}
                | {k: summarize(v, LOGGED_CHARS) for k, v in detail.items()}
            )
        if self.seen < self.max_history:
            return Step(event, {k: summarize(v) for k, v in detail.items()})
        if self.seen == self.max_history:
            return Step(
                "StepsTruncated",
                {
                    "after": str(self.max_history - 1),
                    "message": "later steps are in the steps.jsonl artifact only",
                },
            )
        return None

    def jsonl(self) -> str:
        """The steps artifact: one JSON object a line, and a last line when some were
        counted but not kept."""
        lines = [json.dumps(s, sort_keys=True) for s in self.log]
        if self.seen > len(self.log):
            lines.append(json.dumps({"omitted": self.seen - len(self.log)}))
        return "\n".join(lines) + "\n"
