"""The one error taxonomy: an answer's status decides the class, whatever client got it."""

from __future__ import annotations

import json

import pytest

from ambient.common.kube import errors


def _status(code: int, reason: str, message: str) -> bytes:
    return json.dumps(
        {"kind": "Status", "code": code, "reason": reason, "message": message}
    ).encode()


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, errors.RefusedError),
        (401, errors.RefusedError),
        (403, errors.RefusedError),
        (404, errors.NotFoundError),
        (409, errors.ConflictError),
        (410, errors.RefusedError),
        (413, errors.RefusedError),
        (422, errors.InvalidError),
        (429, errors.UnavailableError),
        (500, errors.UnavailableError),
        (503, errors.UnavailableError),
        (504, errors.UnavailableError),
    ],
)
def test_the_status_decides_the_class(status: int, cls: type[errors.KubeError]) -> None:
    exc = errors.from_status(status, _status(status, "Why", "what happened"))
    assert type(exc) is cls
    assert exc.status == status and exc.reason == "Why"


def test_refusals_are_one_family_and_unavailable_is_not_among_them() -> None:
    for cls in (errors.NotFoundError, errors.ConflictError, errors.InvalidError):
        assert issubclass(cls, errors.RefusedError)
    assert not issubclass(errors.UnavailableError, errors.RefusedError)
    assert issubclass(errors.UnavailableError, errors.KubeError)


def test_a_refusal_carries_the_servers_message() -> None:
    exc = errors.from_status(403, _status(403, "Forbidden", "admission webhook said no"))
    assert (exc.message, str(exc)) == ("admission webhook said no", "admission webhook said no")


def test_a_server_error_keeps_its_words_out_of_the_message_but_in_the_log_line() -> None:
    body = _status(500, "InternalError", "etcdserver: request timed out")
    exc = errors.from_status(500, body)
    assert str(exc) == exc.message == "the API server answered 500"
    logged = errors.from_status(500, body, "GET /api/v1/x")
    assert str(logged) == "GET /api/v1/x: HTTP 500: etcdserver: request timed out"
    assert logged.message == "the API server answered 500"


def test_a_body_that_is_not_a_status_object() -> None:
    exc = errors.from_status(404, b"404 page not found")
    assert isinstance(exc, errors.NotFoundError)
    assert exc.message == "404 page not found" and exc.reason == ""
    assert errors.from_status(403, b"").message == "the API server answered 403"


def test_no_answer_is_unavailable_with_status_zero() -> None:
    exc = errors.unreachable(ConnectionRefusedError())
    assert isinstance(exc, errors.UnavailableError)
    assert exc.status == 0
    assert str(exc) == "the API server cannot be reached: ConnectionRefusedError"
    assert str(errors.UnavailableError("connection refused")) == "connection refused"
