"""The routes under Schemathesis against their own OpenAPI: no input makes them fail with
a 5xx or answer outside what the schema declares. Kept small (max_examples) so the unit
run stays fast."""

from __future__ import annotations

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
@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
def test_the_api_keeps_to_its_schema(case: Any) -> None:
    case.call_and_validate(
        checks=[
            schemathesis.checks.not_a_server_error,
            status_code_conformance,
            content_type_conformance,
            response_schema_conformance,
        ]
    )
