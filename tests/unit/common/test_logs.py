"""Log lines as JSON through structlog: every stdlib logger, the context's trace id, kopf's
object reference, and the text switch."""

from __future__ import annotations

import json
import logging

import pytest

from ambient.common import logs


@pytest.fixture(autouse=True)
def _restore_root() -> object:
    root = logging.getLogger()
    audit = logging.getLogger("ambient.ingress.audit")
    handlers, level = root.handlers[:], root.level
    kept = audit.handlers[:], audit.propagate
    yield None
    root.handlers[:], root.level = handlers, level
    audit.handlers[:], audit.propagate = kept


def test_every_line_is_one_json_object_with_the_bound_trace_id(
    capsys: pytest.CaptureFixture[str],
) -> None:
    logs.configure("ingress")
    with logs.bound(trace_id="abc123"):
        logging.getLogger("ambient.webhooks.ingress.handler").warning("delivery %s refused", 7)
    logging.getLogger("uvicorn.error").info("started")
    first, second = (json.loads(line) for line in capsys.readouterr().err.splitlines())
    assert first["event"] == "delivery 7 refused"
    assert (first["level"], first["logger"], first["component"]) == (
        "warning",
        "ambient.webhooks.ingress.handler",
        "ingress",
    )
    assert first["trace_id"] == "abc123"
    assert first["timestamp"].endswith("Z")
    assert "trace_id" not in second  # the block ended


def test_kopf_lines_name_their_object(capsys: pytest.CaptureFixture[str]) -> None:
    logs.configure("operator")
    ref = {"kind": "Session", "namespace": "team-a", "name": "fix"}
    logging.getLogger("kopf.objects").error("Handler failed", extra={"k8s_ref": ref})
    line = json.loads(capsys.readouterr().err)
    assert (line["object"], line["kind"]) == ("team-a/fix", "Session")


def test_an_exception_is_rendered_into_the_line(capsys: pytest.CaptureFixture[str]) -> None:
    logs.configure("operator")
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        logging.getLogger("x").exception("failed")
    line = json.loads(capsys.readouterr().err)
    assert "RuntimeError: boom" in line["exception"]


def test_text_for_local_work(capsys: pytest.CaptureFixture[str]) -> None:
    logs.configure("operator", "text")
    logging.getLogger("x").info("hello %s", "there")
    err = capsys.readouterr().err
    assert "hello there" in err
    with pytest.raises(json.JSONDecodeError):
        json.loads(err)


def test_an_unknown_format_is_refused() -> None:
    with pytest.raises(ValueError, match="xml"):
        logs.configure("operator", "xml")


def test_audit_records_stay_whole_json_records_on_stdout(
    capsys: pytest.CaptureFixture[str],
) -> None:
    logs.configure("ingress")
    logging.getLogger("ambient.ingress.audit").info(json.dumps({"kind": "WebhookEvent"}))
    out = capsys.readouterr()
    assert json.loads(out.out) == {"kind": "WebhookEvent"}
    assert out.err == ""
