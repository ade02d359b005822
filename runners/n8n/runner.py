"""``ambient-runner n8n``: starts an n8n workflow through its webhook and waits for it.

Config: ``workflow`` (the path of the workflow's Webhook node), ``prompt`` (the task),
``authHeader`` (the header the node's Header Auth checks, default X-Ambient-Token),
``input`` (an optional object passed along), ``timeoutSeconds`` (how long to wait,
default the Session's timeout).

The namespace's Secret ``ambient-n8n-credentials`` gives the base URL (n8n-base-url),
the header's value (n8n-webhook-token) and an API key (n8n-api-key, to follow an
execution); the operator passes them as N8N_BASE_URL, N8N_WEBHOOK_TOKEN, N8N_API_KEY.
``protocol`` says what the answers mean. History gets ``N8nWorkflowStarted``,
``N8nExecution`` (id and status) and the result; the answer is stored as output.json.
n8n reports no tokens or cost: the workflow's own spend is not in the Session's usage.
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request

from ambient.crds.credentials import (
    N8N_API_KEY_KEY,
    N8N_BASE_URL_KEY,
    N8N_ENV,
    N8N_WEBHOOK_TOKEN_KEY,
)
from ambient.runners.n8n import protocol
from ambient.runners.sdk.contract import ContractError
from ambient.runners.sdk.framework import FrameworkRun, Outcome, drive
from ambient.runners.sdk.runtime import Runner
from ambient.runners.sdk.steps import summarize

POLL_SECONDS = 2.0
"""How often a running execution is looked up."""


def run(runner: Runner) -> int:
    return drive(runner, "N8n", _run_workflow)


def _timeout(run: FrameworkRun) -> float:
    value = run.config.get("timeoutSeconds", run.runner.context.raw.get("timeoutSeconds", 3600))
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ContractError("framework.config.timeoutSeconds must be a positive integer")
    return float(value)


def _run_workflow(run: FrameworkRun) -> Outcome:
    base = os.environ.get(N8N_ENV[N8N_BASE_URL_KEY], "")
    token = os.environ.get(N8N_ENV[N8N_WEBHOOK_TOKEN_KEY], "")
    api_key = os.environ.get(N8N_ENV[N8N_API_KEY_KEY], "")
    if not base:
        raise ContractError(
            "no n8n base URL: set the key n8n-base-url of the Secret ambient-n8n-credentials "
            "in this namespace"
        )
    url = protocol.webhook_url(base, run.config.get("workflow"))
    header = protocol.auth_header(run.config)
    context = run.runner.context
    body = protocol.request_body(
        {"name": context.name, "namespace": context.namespace}, run.prompt, run.trigger, run.config
    )
    deadline = time.monotonic() + _timeout(run)
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    if token:
        headers[header] = token
    run.step(
        "N8nWorkflowStarted", {"workflow": run.config.get("workflow"), "authenticated": bool(token)}
    )
    code, raw = _http("POST", url, headers, json.dumps(body).encode(), deadline)
    answer = protocol.read_answer(code, raw)
    run.output = answer.output
    run.step(
        "N8nExecution",
        {"executionId": answer.execution_id, "status": answer.status, "httpStatus": code},
    )
    if not answer.ok:
        raise RuntimeError(answer.message)
    if answer.execution_id and api_key:
        execution = _follow(base, answer.execution_id, api_key, deadline)
        run.step(
            "N8nExecution",
            {"executionId": answer.execution_id, "status": execution.status, "source": "api"},
        )
        if execution.status in protocol.FAILED:
            raise RuntimeError(
                f"the workflow's execution {answer.execution_id} ended {execution.status}: "
                f"{execution.message}"
            )
    output = answer.output
    summary = output.get("summary") if isinstance(output, dict) else None
    return Outcome(summary if isinstance(summary, str) else summarize(output, 4000), output)


def _follow(base: str, execution_id: str, api_key: str, deadline: float) -> protocol.Execution:
    """Look the execution up until it has ended (or the deadline passes)."""
    url = protocol.execution_url(base, execution_id)
    headers = {"X-N8N-API-KEY": api_key, "Accept": "application/json"}
    while True:
        code, raw = _http("GET", url, headers, None, deadline)
        if code != 200:
            raise RuntimeError(
                f"n8n's API answered {code} for execution {execution_id}: "
                f"{raw.decode('utf-8', 'replace')[:500]}"
            )
        execution = protocol.read_execution(json.loads(raw))
        if execution.finished:
            return execution
        if time.monotonic() + POLL_SECONDS > deadline:
            raise TimeoutError(f"execution {execution_id} is still {execution.status}")
        time.sleep(POLL_SECONDS)


def _http(
    method: str, url: str, headers: dict[str, str], data: bytes | None, deadline: float
) -> tuple[int, bytes]:
    """One request; any HTTP status is returned, a connection failure raised."""
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("the n8n workflow did not answer in time")
    request = urllib.request.Request(url, data=data, headers=headers, method=method)  # noqa: S310 - http(s) checked
    try:
        with urllib.request.urlopen(request, timeout=left) as response:  # noqa: S310
            return int(response.status), bytes(response.read())
    except urllib.error.HTTPError as exc:
        return int(exc.code), bytes(exc.read())
    except (urllib.error.URLError, OSError) as exc:
        raise RuntimeError(f"cannot reach n8n at {url}: {exc}") from exc
