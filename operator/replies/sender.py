"""Replies, wired: what a Session owes its source is posted by background workers, and
every attempt and the outcome go into the Session's history.

Level-triggered like the notification outbox: every Session event asks ``rules.owed``;
a worker reads the Session afresh, records ``ReplyAttempted`` BEFORE each post (so a
kill between the post and its record leaves a trace), posts (looking for the reply's
marker first when an earlier attempt may have landed), and records ReplySent, ReplyFailed
or ReplySkipped. Only these history entries are written: a reply never touches the
Session's phase, reason or conditions, so a failed reply never changes its outcome.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import pydantic

from ambient.common.audit import trail as audit
from ambient.common.audit.records import record as audit_record
from ambient.common.kube.client import ConflictError, GoneError, Kube
from ambient.crds import credentials as keys
from ambient.crds.events import HistoryEvent
from ambient.crds.history import known_ids
from ambient.crds.models import NamespacePolicy, ReplyPolicy, Session
from ambient.operator.replies import rules
from ambient.operator.replies.client import Answer, Credentials, ReplyClient
from ambient.operator.replies.rules import Kind, Reply
from ambient.operator.sessions.status import StatusEditor, wire

log = logging.getLogger(__name__)

WRITE_ATTEMPTS = 8
ERROR_MAX = 200

_MESSAGES: dict[Kind, Callable[[Session, Reply], dict[str, Any]]] = {
    Kind.GITHUB: rules.github_comment,
    Kind.GITHUB_CHECK: rules.check_run,
    Kind.JIRA: rules.jira_comment,
    Kind.SLACK: rules.slack_message,
}


class Replier:
    """A bounded queue of owed replies drained by a few workers."""

    def __init__(
        self,
        api: Kube,
        policy_of: Callable[[str], NamespacePolicy | None],
        client: ReplyClient,
        *,
        workers: int = 4,
        queue_size: int = 10_000,
        max_attempts: int = 5,
        base_backoff: float = 1.0,
        max_backoff: float = 60.0,
    ) -> None:
        self._api = api
        self._policy_of = policy_of
        self.client = client
        self._queue: asyncio.Queue[Reply] = asyncio.Queue(queue_size)
        self._in_flight: set[str] = set()
        self._finished: OrderedDict[str, None] = OrderedDict()
        self._workers = workers
        self._tasks: list[asyncio.Task[None]] = []
        self._max_attempts = max_attempts
        self._base = base_backoff
        self._cap = max_backoff

    async def start(self) -> None:
        await self.client.start()
        self._tasks = [
            asyncio.create_task(self._work(), name=f"replier-{i}") for i in range(self._workers)
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        await self.client.stop()

    async def drain(self) -> None:
        """Wait until everything submitted has an outcome (tests and shutdown)."""
        await self._queue.join()

    async def session_changed(self, body: Mapping[str, Any]) -> None:
        """Submit the replies the Session's state owes that its history does not record."""
        if not (body.get("spec") or {}).get("trigger", {}).get("replyTo"):
            return  # most Sessions: nothing to parse
        policy = self._policy_of(str((body.get("metadata") or {}).get("namespace", "")))
        replies = policy.spec.replies if policy is not None else ReplyPolicy()
        # Cheap before the whole body is validated: a pending Session owes nothing, nor a
        # running one unless started replies are on (attempts happen only from Running).
        phase = (body.get("status") or {}).get("phase") or "Pending"
        if phase == "Pending" or (phase == "Running" and not replies.on_start):
            return
        try:
            session = Session.model_validate(dict(body))
        except pydantic.ValidationError:
            return
        for reply in rules.owed(session, replies):
            if reply.key in self._in_flight or reply.key in self._finished:
                continue
            try:
                self._queue.put_nowait(reply)
            except asyncio.QueueFull:
                log.warning("reply queue full; %s stays owed", reply.key)
                return
            self._in_flight.add(reply.key)

    async def _work(self) -> None:
        while True:
            reply = await self._queue.get()
            try:
                await self._deliver(reply)
            except Exception:  # recorded nothing final: owed again on the next event
                log.exception("reply %s failed unexpectedly", reply.key)
            finally:
                self._in_flight.discard(reply.key)
                self._queue.task_done()

    async def _deliver(self, reply: Reply) -> None:
        session = await self._read(reply)
        if session is None or reply.history_id in known_ids(session.status.history):
            self._finish(reply)
            return
        data = await asyncio.to_thread(
            self._api.read_secret_data, reply.namespace, keys.SOURCE_CREDENTIALS_SECRET
        )
        creds = Credentials(data or {})
        why = (
            f"no Secret {keys.SOURCE_CREDENTIALS_SECRET}"
            if data is None
            else creds.missing(reply.kind)
        )
        if why:
            await self._final(reply, rules.HISTORY_SKIPPED, {"reason": why})
            return
        made = rules.attempts_made(session, reply)
        answer: Answer | None = None
        while True:
            if made >= self._max_attempts:
                error = answer.error if answer else "attempts spent before a restart"
                await self._final(reply, rules.HISTORY_FAILED, _outcome(made, answer, error=error))
                return
            made += 1
            attempt = {"attempt": str(made), "target": rules.describe_target(reply)}
            if answer is not None:
                attempt["previous"] = answer.error[:ERROR_MAX]
            session = await self._append(
                reply, reply.attempt_id(made), rules.HISTORY_ATTEMPTED, attempt
            )
            if session is None:
                return  # the Session is gone, or nothing could be recorded: post nothing
            message = _MESSAGES[reply.kind](session, reply)
            answer = await self.client.send(
                reply,
                message,
                creds,
                look_first=made > 1,
                since=session.metadata.creation_timestamp,
            )
            if answer.ok:
                await self._final(reply, rules.HISTORY_SENT, _outcome(made, answer))
                return
            if answer.final or not _worth_retrying(answer):
                await self._final(
                    reply, rules.HISTORY_FAILED, _outcome(made, answer, error=answer.error)
                )
                return
            if made < self._max_attempts:
                wait = rules.delay(
                    made, rules.retry_after(answer.retry_after, datetime.now(UTC)), self._base,
                    self._cap,
                )  # fmt: skip
                await asyncio.sleep(wait)

    async def _read(self, reply: Reply) -> Session | None:
        try:
            body = await asyncio.to_thread(self._api.get_session, reply.namespace, reply.session)
        except GoneError:
            return None
        session = Session.model_validate(body)
        return session if session.metadata.uid == reply.uid else None

    async def _final(self, reply: Reply, event: HistoryEvent, data: dict[str, str]) -> None:
        await self._append(reply, reply.history_id, event, data)
        self._finish(reply)

    def _finish(self, reply: Reply) -> None:
        self._finished[reply.key] = None
        while len(self._finished) > 10_000:
            self._finished.popitem(last=False)

    async def _append(
        self, reply: Reply, entry_id: str, event: HistoryEvent, data: dict[str, str]
    ) -> Session | None:
        """Append one history entry (guarded by resourceVersion); the Session as written,
        or None when it is gone or its history has no room. An entry already there is left
        as it is."""
        data = {"kind": reply.kind.value, "outcome": reply.outcome.value, **data}
        for _ in range(WRITE_ATTEMPTS):
            session = await self._read(reply)
            if session is None:
                return None
            stored = wire(session.status)
            edit = StatusEditor(session.status, datetime.now(UTC), session.metadata.generation)
            if edit.has(entry_id):
                return session
            if not edit.append(entry_id, event, data):
                # The window is full (no store to archive to): a post that cannot be
                # recorded first is not made, or a restart could not tell it happened.
                log.warning("no room in %s's history for %s", reply.session, entry_id)
                return None
            try:
                written = await asyncio.to_thread(
                    self._api.patch_session_status,
                    reply.namespace,
                    reply.session,
                    session.metadata.resource_version,
                    stored,
                    wire(edit.status),
                )
            except ConflictError:
                continue
            except GoneError:
                return None
            audit.emit(
                audit_record(
                    namespace=reply.namespace,
                    session_id=reply.uid,
                    actor="ambient-operator",
                    action=event,
                    resource=f"sessions/{reply.session}",
                    outcome="failure" if event == rules.HISTORY_FAILED else "success",
                    details=data,
                    trace_id=reply.key,
                )
            )
            return Session.model_validate(written)
        raise RuntimeError(f"could not record {entry_id} after {WRITE_ATTEMPTS} conflicts")


def _worth_retrying(answer: Answer) -> bool:
    status = answer.status
    # A 2xx that is not a success is Slack's ok:false with a transient error code.
    return rules.retryable(status, answer.retry_after) or (
        status is not None and 200 <= status < 300
    )


def _outcome(attempts: int, answer: Answer | None, *, error: str = "") -> dict[str, str]:
    data = {"attempts": str(attempts)}
    if answer is not None:
        data["status"] = str(answer.status or "")
        if answer.found:
            data["deduplicated"] = "true"  # found at the source: posted before a restart
        if answer.ref:
            data["ref"] = answer.ref[:ERROR_MAX]
    if error:
        data["error"] = error[:ERROR_MAX]
    return data
