"""Pure parts of the n8n runner: which URL, what body, what an answer means.

n8n's contract (its Webhook node): a workflow with a Webhook trigger node on path P
listens, once active, on ``<base>/webhook/P``. With "Header Auth" the node compares one
header's value with its credential. It answers when the workflow ends ("When last node
finishes") or where a "Respond to Webhook" node says; a workflow that fails answers 500
with ``{"message": ...}``; an unknown or inactive path answers 404.

The runner's convention on top: the answer is the result (JSON or text); when it is an
object with ``executionId`` (the workflow responds with ``{{ $execution.id }}``) and an
API key is set, the runner follows that execution through n8n's REST API
(``GET /api/v1/executions/<id>``) until it ends, so a workflow may respond early and
finish later. ``status`` ``error``/``failed`` in the answer fails the Session with its
``message``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

from ambient.runners.sdk.contract import ContractError

_PATH = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._~/-]{0,200}$")
_HEADER = re.compile(r"^[A-Za-z0-9-]{1,100}$")
FINISHED = frozenset({"success", "error", "crashed", "canceled", "cancelled"})
"""Execution statuses that end a run (n8n's ExecutionStatus); the rest are still going."""
FAILED = frozenset({"error", "crashed", "canceled", "cancelled", "failed"})


def webhook_url(base: str, workflow: Any) -> str:
    """<base>/webhook/<path>; the path is relative and cannot leave the webhook prefix."""
    parts = urlsplit(base)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ContractError(
            "the n8n base URL (Secret ambient-n8n-credentials, key n8n-base-url) must be "
            f"an http(s) URL, got {base!r}"
        )
    if (
        not isinstance(workflow, str)
        or not _PATH.fullmatch(workflow)
        or ".." in workflow.split("/")
    ):
        raise ContractError(
            "framework.config.workflow must be the path of the workflow's Webhook node "
            f"(letters, digits, '.', '_', '~', '-', '/'; no '..'), got {workflow!r}"
        )
    return f"{base.rstrip('/')}/webhook/{quote(workflow, safe='/')}"


def execution_url(base: str, execution_id: str) -> str:
    """The REST API's view of one execution, with its data (for the error message)."""
    return f"{base.rstrip('/')}/api/v1/executions/{quote(execution_id, safe='')}?includeData=true"


def auth_header(config: dict[str, Any]) -> str:
    """The header the Webhook node's Header Auth credential checks."""
    name = config.get("authHeader", "X-Ambient-Token")
    if not isinstance(name, str) or not _HEADER.fullmatch(name):
        raise ContractError(f"framework.config.authHeader must be a header name, got {name!r}")
    return name


def request_body(
    session: dict[str, str], prompt: str, trigger: dict[str, Any], config: dict[str, Any]
) -> dict[str, Any]:
    """The JSON the workflow receives: the Session, its task, its trigger, and the
    optional ``framework.config.input`` object."""
    extra = config.get("input", {})
    if not isinstance(extra, dict):
        raise ContractError("framework.config.input must be an object")
    return {"session": session, "prompt": prompt, "trigger": trigger, "input": extra}


@dataclass(frozen=True)
class Answer:
    """What the webhook's answer says."""

    ok: bool
    status: str
    message: str
    execution_id: str
    output: Any


def read_answer(code: int, body: bytes) -> Answer:
    """Read the webhook's HTTP answer (any status code)."""
    text = body.decode("utf-8", "replace")
    try:
        output: Any = json.loads(text) if text.strip() else None
    except ValueError:
        output = text
    # "Respond to Webhook" may answer with a list of items; one item is the object.
    first = output[0] if isinstance(output, list) and len(output) == 1 else output
    fields = first if isinstance(first, dict) else {}
    execution_id = str(fields.get("executionId", "") or "")
    if code == 404:
        return Answer(
            False,
            "not-found",
            f"n8n answered 404: {_message(fields, text)} (is the workflow active, and is "
            "framework.config.workflow its Webhook node's path?)",
            execution_id,
            output,
        )
    if code in (401, 403):
        return Answer(
            False,
            "unauthorized",
            f"n8n refused the credential ({code}): {_message(fields, text)}",
            execution_id,
            output,
        )
    if code >= 300:
        return Answer(
            False,
            "error",
            f"the workflow failed ({code}): {_message(fields, text)}",
            execution_id,
            output,
        )
    status = str(fields.get("status", "") or "success").lower()
    if status in FAILED:
        return Answer(
            False,
            status,
            f"the workflow reported {status}: {_message(fields, text)}",
            execution_id,
            output,
        )
    return Answer(True, status, "", execution_id, output)


def _message(fields: dict[str, Any], text: str) -> str:
    for key in ("message", "error", "hint"):
        value = fields.get(key)
        if isinstance(value, str) and value:
            return value[:1000]
        if isinstance(value, dict) and isinstance(value.get("message"), str):
            return str(value["message"])[:1000]
    return text[:1000] or "no message"


@dataclass(frozen=True)
class Execution:
    """One execution as the REST API shows it."""

    finished: bool
    status: str
    message: str


def read_execution(body: dict[str, Any]) -> Execution:
    """GET /api/v1/executions/<id>: its status and, when it failed, the error's message."""
    status = str(body.get("status", "") or "").lower()
    if not status:  # older n8n: only `finished` and `stoppedAt`
        status = (
            "success" if body.get("finished") else ("error" if body.get("stoppedAt") else "running")
        )
    message = ""
    if status in FAILED:
        error = ((body.get("data") or {}).get("resultData") or {}).get("error") or {}
        message = str(error.get("message") or error.get("description") or f"status {status}")
    return Execution(status in FINISHED, status, message[:2000])
