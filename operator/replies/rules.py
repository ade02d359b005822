"""Replies to where a Session's event came from: which are owed, what they say (pure).

A reply is owed when the Session is in the state the namespace's ``spec.replies`` asks to
report (running: ``started``; Completed or Failed: ``ended``), its trigger names a place
(``spec.trigger.replyTo``), and its history holds no final record for it
(``reply/<kind>/<outcome>``: ReplySent, ReplyFailed or ReplySkipped). Exactly once per
Session uid and outcome: an attempt entry (``reply/<kind>/<outcome>/attempt-<n>``) is
written BEFORE each post, so after a kill between a post and its record the history shows
an unfinished attempt, and the sender looks for the reply's marker at the source before
it posts again (a hidden HTML comment on GitHub, a comment property on Jira, message
metadata on Slack). Retries, restarts included, are bounded by the attempts recorded.
"""

from __future__ import annotations

import email.utils
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from ambient.crds.events import HistoryEvent
from ambient.crds.history import known_ids
from ambient.crds.models import HistoryEntry, Phase, ReplyPolicy, ReplyTarget, Session

RESULT_ID = "runner:result"
RESULT_EVENT = "RunnerSucceeded"
FAILED_ID = "runner:failed"

HISTORY_ATTEMPTED = HistoryEvent.REPLY_ATTEMPTED
HISTORY_SENT = HistoryEvent.REPLY_SENT
HISTORY_FAILED = HistoryEvent.REPLY_FAILED
HISTORY_SKIPPED = HistoryEvent.REPLY_SKIPPED

SLACK_EVENT_TYPE = "ambient_reply"
"""Slack message metadata event_type; its payload's ``reply`` is the reply's marker."""
JIRA_PROPERTY = "ambient-reply"
"""Jira comment property whose value's ``reply`` is the reply's marker."""
CHECK_RUN_NAME = "ambient"

MAX_ARTIFACTS_LISTED = 10


class Kind(StrEnum):
    """Where a reply goes."""

    GITHUB = "github"
    GITHUB_CHECK = "github-check"
    JIRA = "jira"
    SLACK = "slack"


class Outcome(StrEnum):
    """Which moment of the Session a reply reports."""

    STARTED = "started"
    ENDED = "ended"


LIMITS: dict[Kind, int] = {
    Kind.GITHUB: 65_536,  # an issue comment's body
    Kind.GITHUB_CHECK: 65_535,  # a check run's output.summary
    Kind.JIRA: 32_767,  # a Jira comment's body
    Kind.SLACK: 3_000,  # a section block's text; longer messages are split by Slack
}


@dataclass(frozen=True)
class Reply:
    """One reply owed: to where, for which moment of which Session."""

    kind: Kind
    outcome: Outcome
    namespace: str
    session: str
    uid: str
    target: ReplyTarget

    @property
    def history_id(self) -> str:
        """The final record (ReplySent, ReplyFailed or ReplySkipped)."""
        return f"reply/{self.kind.value}/{self.outcome.value}"

    def attempt_id(self, attempt: int) -> str:
        """The record written before attempt ``attempt`` (1-based)."""
        return f"{self.history_id}/attempt-{attempt}"

    @property
    def marker(self) -> str:
        """What identifies this reply at the source: the Session's uid and the outcome."""
        return f"ambient:{self.uid}:{self.outcome.value}"

    @property
    def key(self) -> str:
        """The in-process key: one worker per reply at a time."""
        return f"{self.uid}/{self.kind.value}/{self.outcome.value}"


def kinds(source: str, target: ReplyTarget, policy: ReplyPolicy) -> list[Kind]:
    """Where a trigger of ``source`` with this target is replied to."""
    if source == "github" and target.repository and target.number:
        found = [Kind.GITHUB]
        if policy.github_check_run and target.head_sha:
            found.append(Kind.GITHUB_CHECK)
        return found
    if source == "jira" and target.issue_key:
        return [Kind.JIRA]
    if source == "slack" and target.channel:
        return [Kind.SLACK]
    return []


def current_outcome(session: Session, policy: ReplyPolicy) -> Outcome | None:
    """The moment the Session's state stands for that the policy asks to report."""
    phase = session.status.phase
    if phase in (Phase.COMPLETED, Phase.FAILED):
        return Outcome.ENDED if policy.on_end else None
    if phase == Phase.RUNNING and policy.on_start:
        return Outcome.STARTED
    return None


def owed(session: Session, policy: ReplyPolicy) -> list[Reply]:
    """Replies the Session's state calls for that its history does not record as final.

    A ``started`` reply not yet attempted is not owed once the Session ended (it would
    arrive after the news); one already attempted is finished first (it may have been
    posted before a kill), and the ``ended`` reply waits for it, so the two arrive in order.
    """
    target = session.spec.trigger.reply_to
    if target is None or not session.metadata.uid:
        return []
    outcome = current_outcome(session, policy)
    recorded = known_ids(session.status.history)
    found = []
    for kind in kinds(session.spec.trigger.source.value, target, policy):
        meta = session.metadata
        started = Reply(kind, Outcome.STARTED, meta.namespace, meta.name, meta.uid, target)
        if started.attempt_id(1) in recorded and started.history_id not in recorded:
            found.append(started)  # unfinished: settle it before anything else
            continue
        if outcome is None:
            continue
        reply = Reply(kind, outcome, meta.namespace, meta.name, meta.uid, target)
        if reply.history_id not in recorded:
            found.append(reply)
    return found


def attempts_made(session: Session, reply: Reply) -> int:
    """How many attempts the history records for this reply (across restarts)."""
    recorded = known_ids(session.status.history)
    count = 0
    while reply.attempt_id(count + 1) in recorded:
        count += 1
    return count


def describe_target(reply: Reply) -> str:
    """The target as one line for history: repository#number, issue key or channel."""
    t = reply.target
    if reply.kind in (Kind.GITHUB, Kind.GITHUB_CHECK):
        where = f"{t.repository}#{t.number}"
        return (
            f"{where}@{t.head_sha[:12]}"
            if reply.kind is Kind.GITHUB_CHECK and t.head_sha
            else where
        )
    if reply.kind is Kind.JIRA:
        return str(t.issue_key)
    return f"{t.channel}/{t.thread_ts}" if t.thread_ts else str(t.channel)


# --- what a reply says --------------------------------------------------------------------


@dataclass(frozen=True)
class Style:
    """How one destination marks up bold text and code."""

    bold: str
    code_open: str
    code_close: str


STYLES: dict[Kind, Style] = {
    Kind.GITHUB: Style("**", "`", "`"),
    Kind.GITHUB_CHECK: Style("**", "`", "`"),
    Kind.SLACK: Style("*", "`", "`"),
    Kind.JIRA: Style("*", "{{", "}}"),
}


def runner_result(history: list[HistoryEntry]) -> dict[str, str] | None:
    """The runner's result entry's data, when the window still holds it."""
    for entry in reversed(history):
        if entry.id == RESULT_ID and entry.event == RESULT_EVENT:
            return dict(entry.data)
    return None


def _failure(session: Session) -> str:
    status = session.status
    text = status.reason or "Failed"
    if status.message:
        text = f"{text}: {status.message}"
    for entry in reversed(status.history):
        if entry.id == FAILED_ID:
            detail = entry.data.get("message") or entry.data.get("reason") or ""
            if detail and detail not in text:
                text = f"{text}\n{detail}"
            break
    return text


def _headline(session: Session, outcome: Outcome, style: Style) -> str:
    meta = session.metadata
    name = f"{style.code_open}{meta.namespace}/{meta.name}{style.code_close}"
    if outcome is Outcome.STARTED:
        return f"{style.bold}Started{style.bold}: Session {name} is working on this."
    if session.status.phase == Phase.COMPLETED:
        return f"{style.bold}Done{style.bold}: Session {name} completed."
    return f"{style.bold}Failed{style.bold}: Session {name} did not complete."


def _details(session: Session, style: Style) -> list[str]:
    """Where to look: the result's branch, pull request, changed files, transcript and the
    Session's artifacts (locations only, never their content)."""
    result = runner_result(session.status.history) or {}
    lines = []
    for key, label in (
        ("pullRequest", "Pull request"),
        ("branch", "Branch"),
        ("changedFiles", "Changed files"),
        ("transcript", "Transcript"),
    ):
        if result.get(key):
            lines.append(f"- {label}: {style.code_open}{result[key]}{style.code_close}")
    generated = session.status.artifacts.generated
    for artifact in generated[:MAX_ARTIFACTS_LISTED]:
        lines.append(
            f"- Artifact ({artifact.type}): {style.code_open}{artifact.location}{style.code_close}"
        )
    if len(generated) > MAX_ARTIFACTS_LISTED:
        lines.append(f"- and {len(generated) - MAX_ARTIFACTS_LISTED} more artifacts")
    return lines


def body_text(session: Session, reply: Reply) -> str:
    """The reply's text without its marker, bounded to the destination's limit less room
    for the marker. Truncation keeps the headline and the locations and cuts the summary,
    saying so."""
    style = STYLES[reply.kind]
    head = _headline(session, reply.outcome, style)
    if reply.outcome is Outcome.STARTED:
        return head
    if session.status.phase == Phase.COMPLETED:
        result = runner_result(session.status.history)
        main = (result or {}).get("summary") or "The runner reported no summary."
    else:
        main = _failure(session)
    tail = "\n".join(_details(session, style))
    limit = LIMITS[reply.kind] - len(marker_text(reply)) - 2
    return bounded(head, main, tail, limit, f"{session.metadata.namespace}/{session.metadata.name}")


TRUNCATED = "\n[... truncated: {n} more characters; the full result is in Session {name}]"


def bounded(head: str, main: str, tail: str, limit: int, name: str) -> str:
    """head, main and tail joined by blank lines in at most ``limit`` characters; ``main``
    is cut first (the cut is marked), then the tail, never the head."""
    parts = [p for p in (head, main, tail) if p]
    text = "\n\n".join(parts)
    if len(text) <= limit:
        return text
    fixed = len(head) + (len(tail) + 2 if tail else 0) + 2
    room = limit - fixed - len(TRUNCATED.format(n=len(main), name=name))
    if room < 0:  # even the locations do not fit: drop them too
        tail, fixed = "", len(head) + 2
        room = limit - fixed - len(TRUNCATED.format(n=len(main), name=name))
    room = max(room, 0)
    cut = main[:room] + TRUNCATED.format(n=len(main) - room, name=name)
    return "\n\n".join(p for p in (head, cut, tail) if p)[:limit]


def marker_text(reply: Reply) -> str:
    """The marker as the destination shows (or hides) it in the body."""
    if reply.kind is Kind.GITHUB:
        return f"<!-- {reply.marker} -->"  # an HTML comment: invisible on GitHub
    if reply.kind is Kind.JIRA:
        return f"{{color:#97a0af}}{reply.marker}{{color}}"  # small print; the property decides
    return ""


def github_comment(session: Session, reply: Reply) -> dict[str, Any]:
    """POST /repos/{repository}/issues/{number}/comments."""
    return {"body": f"{body_text(session, reply)}\n\n{marker_text(reply)}"}


def jira_comment(session: Session, reply: Reply) -> dict[str, Any]:
    """POST /rest/api/2/issue/{key}/comment: the text plus a property carrying the marker."""
    return {
        "body": f"{body_text(session, reply)}\n\n{marker_text(reply)}",
        "properties": [{"key": JIRA_PROPERTY, "value": {"reply": reply.marker}}],
    }


def slack_message(session: Session, reply: Reply) -> dict[str, Any]:
    """chat.postMessage in the event's thread, with the marker in the message metadata."""
    message: dict[str, Any] = {
        "channel": reply.target.channel,
        "text": body_text(session, reply),
        "unfurl_links": False,
        "metadata": {"event_type": SLACK_EVENT_TYPE, "event_payload": {"reply": reply.marker}},
    }
    if reply.target.thread_ts:
        message["thread_ts"] = reply.target.thread_ts
    return message


_CONCLUSIONS = {"TimedOut": "timed_out", "Cancelled": "cancelled"}


def check_run(session: Session, reply: Reply) -> dict[str, Any]:
    """A check run's fields (without head_sha/name): in progress when started, completed
    with a conclusion when ended. ``external_id`` is the Session's uid."""
    text = body_text(session, reply)
    title = text.split("\n", 1)[0].replace("**", "")[:255]
    run: dict[str, Any] = {
        "external_id": reply.uid,
        "output": {"title": title, "summary": text},
    }
    if reply.outcome is Outcome.STARTED:
        run["status"] = "in_progress"
    else:
        run["status"] = "completed"
        if session.status.phase == Phase.COMPLETED:
            run["conclusion"] = "success"
        else:
            run["conclusion"] = _CONCLUSIONS.get(session.status.reason or "", "failure")
    return run


def has_marker(texts: list[str], reply: Reply) -> bool:
    """Whether any of the texts (comment bodies, metadata values) carries this reply's marker."""
    return any(reply.marker in t for t in texts)


# --- retries ------------------------------------------------------------------------------


def retryable(status: int | None, retry_after: str | None = None) -> bool:
    """Connection errors and timeouts (None), 408, 429 and 5xx; a 403 only with a
    Retry-After (GitHub's secondary rate limit); other answers are final."""
    if status == 403:
        return bool(retry_after)
    return status is None or status in (408, 429) or status >= 500


def retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds a Retry-After header asks to wait (delta-seconds or an HTTP date), or None."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, (when - now).total_seconds())


def delay(attempt: int, asked: float | None, base: float, cap: float) -> float:
    """Seconds before the attempt after ``attempt`` (1-based): what the server asked for,
    up to ``cap``; else exponential from ``base``, capped."""
    if attempt < 1:
        raise ValueError(f"attempt must be 1 or more, got {attempt}")
    if asked is not None:
        return min(cap, asked)
    return float(min(cap, base * 2 ** (attempt - 1)))
