"""The routes under Schemathesis against their own OpenAPI: no input makes them fail with
a 5xx or answer outside what the schema declares. `make test` runs a fixed set of examples
(derandomized by the "ci" Hypothesis profile, tests/unit/conftest.py), far more than the
15 it once did; `make fuzz` runs random ones, AMBIENT_FUZZ_EXAMPLES per operation."""

from __future__ import annotations

import os
from typing import Any

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from ambient.webhooks.ingress.app import create_app
from ambient.webhooks.ingress.keyindex import KeyIndex, key_hash
from ambient.webhooks.ingress.settings import IngressSettings


class _Backend:
    def create_session(self, manifest: dict[str, Any]) -> dict[str, Any] | None:
        return None

    def signing_secret(self, namespace: str, secret: str, source: str) -> str | None:
        return "secret"


def _app() -> Any:
    index = KeyIndex()
    index.replace_all(
        [
            (
                "team-a",
                {
                    "webhookAuth": {
                        "apiKeys": {"github": key_hash("k")},
                        "signingSecretRef": {"name": "s"},
                    }
                },
            )
        ]
    )
    return create_app(index, _Backend(), settings=IngressSettings())


schema = schemathesis.openapi.from_asgi("/openapi.json", _app())


@schema.parametrize()
@settings(
    max_examples=int(os.environ.get("AMBIENT_FUZZ_EXAMPLES", "100")),
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_the_api_keeps_to_its_schema(case: Any) -> None:
    case.call_and_validate(
        checks=[
            schemathesis.checks.not_a_server_error,
            status_code_conformance,
            content_type_conformance,
            response_schema_conformance,
        ]
    )
