"""What the n8n runner sends and how it reads n8n's answers (runners/n8n/protocol.py)."""

from __future__ import annotations

import json

import pytest

from ambient.runners.n8n import protocol
from ambient.runners.sdk.contract import ContractError


def test_webhook_url_is_under_the_webhook_prefix() -> None:
    assert (
        protocol.webhook_url("http://n8n.team:5678/", "ambient/fix")
        == "http://n8n.team:5678/webhook/ambient/fix"
    )


@pytest.mark.parametrize("path", ["", "/abs", "../rest/x", "a/../../b", "a?b=c", "a b", None, 3])
def test_webhook_paths_that_could_leave_the_prefix_are_refused(path: object) -> None:
    with pytest.raises(ContractError, match=r"framework\.config\.workflow"):
        protocol.webhook_url("http://n8n:5678", path)


@pytest.mark.parametrize("base", ["", "n8n:5678", "file:///etc/passwd", "ftp://x"])
def test_the_base_url_must_be_http(base: str) -> None:
    with pytest.raises(ContractError, match="n8n-base-url"):
        protocol.webhook_url(base, "x")


def test_auth_header_defaults_and_is_checked() -> None:
    assert protocol.auth_header({}) == "X-Ambient-Token"
    assert protocol.auth_header({"authHeader": "X-Team"}) == "X-Team"
    with pytest.raises(ContractError, match="authHeader"):
        protocol.auth_header({"authHeader": "X\r\nInjected: 1"})


def test_request_body_carries_session_task_trigger_input() -> None:
    body = protocol.request_body({"name": "s"}, "do it", {"source": "jira"}, {"input": {"k": 1}})
    assert body == {
        "session": {"name": "s"},
        "prompt": "do it",
        "trigger": {"source": "jira"},
        "input": {"k": 1},
    }
    with pytest.raises(ContractError, match="input must be an object"):
        protocol.request_body({}, "x", {}, {"input": [1]})


def test_a_successful_answer_with_its_execution_id() -> None:
    answer = protocol.read_answer(
        200, json.dumps([{"executionId": "12", "summary": "ok"}]).encode()
    )
    assert (answer.ok, answer.status, answer.execution_id) == (True, "success", "12")
    text = protocol.read_answer(200, b"plain text")
    assert (text.ok, text.output) == (True, "plain text")


@pytest.mark.parametrize(
    ("code", "body", "status", "message"),
    [
        (
            500,
            b'{"code":0,"message":"Error in workflow"}',
            "error",
            "failed (500): Error in workflow",
        ),
        (
            404,
            b'{"message":"The requested webhook is not registered."}',
            "not-found",
            "is the workflow active",
        ),
        (
            403,
            b'{"message":"Authorization data is wrong!"}',
            "unauthorized",
            "refused the credential",
        ),
        (200, b'{"status":"error","message":"no repo"}', "error", "reported error: no repo"),
    ],
)
def test_failures_carry_n8ns_message(code: int, body: bytes, status: str, message: str) -> None:
    answer = protocol.read_answer(code, body)
    assert not answer.ok
    assert answer.status == status
    assert message in answer.message


def test_execution_status_and_error_message() -> None:
    running = protocol.read_execution({"status": "running"})
    assert (running.finished, running.status) == (False, "running")
    failed = protocol.read_execution(
        {"status": "error", "data": {"resultData": {"error": {"message": "node X failed"}}}}
    )
    assert (failed.finished, failed.message) == (True, "node X failed")
    old = protocol.read_execution({"finished": True})
    assert (old.finished, old.status) == (True, "success")
