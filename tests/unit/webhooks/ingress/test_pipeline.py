"""The pipeline, written once for the ingress and a replay: verify, decide, offload, create,
in that order, with the failures of each step as the stable IngressErrors callers answer."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
from typing import Any

import pytest

from ambient.common.kube.client import secret_path
from ambient.common.store.s3 import StoreUnavailableError
from ambient.webhooks.ingress import events, replay
from ambient.webhooks.ingress.errors import IngressError, KubeRefusedError, KubeUnavailableError
from ambient.webhooks.ingress.pipeline import Audit, Pipeline, Result, offload_payload

GUID = "72d3162e-cc78-11e3-81ab-4c9367dc0958"
SPEC: dict[str, Any] = {
    "webhookAuth": {"signingSecretRef": {"name": "signing"}},
    "defaults": {"framework": {"type": "script"}},
}


def _name(payload: Any) -> str:
    """The Session a GitHub body maps to: by its digest (finding 5 of issue 17)."""
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return events.body_session_name("github", hashlib.sha256(body).hexdigest())


def _run(
    pipe: Pipeline, signer, payload: Any, audit: Audit | None = None, *, delivery: str = GUID
) -> Result:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    headers = {
        "content-type": "application/json",
        "x-github-event": "pull_request",
        "x-github-delivery": delivery,
        "x-hub-signature-256": signer.github(body),
    }
    return asyncio.run(
        pipe.run(
            replay.tenant_of("team-a", SPEC),
            "github",
            headers,
            body,
            audit or Audit(source="github", trace_id="t"),
        )
    )


def test_the_audit_says_how_far_a_delivery_got(signer, github_example, creator) -> None:
    audit = Audit(source="github", trace_id="t")
    result = _run(
        Pipeline(creator, inline_limit=1 << 20),
        signer,
        github_example("pull_request.opened"),
        audit,
    )
    assert result.outcome == "created"
    assert (audit.event, audit.delivery_id) == ("pull_request.opened", GUID)
    assert (audit.session, audit.outcome) == (
        _name(github_example("pull_request.opened")),
        "created",
    )
    assert creator.secret_reads == 1 and creator.creates == 1


def test_a_name_held_by_another_delivery_is_a_conflict(signer, github_example, creator) -> None:
    creator.sessions[("team-a", _name(github_example("pull_request.opened")))] = {
        "spec": {"trigger": {"source": "github", "deliveryId": "other"}}
    }
    audit = Audit(source="github", trace_id="t")
    with pytest.raises(IngressError) as refused:
        _run(
            Pipeline(creator, inline_limit=1 << 20),
            signer,
            github_example("pull_request.opened"),
            audit,
        )
    assert (refused.value.status, refused.value.code) == (409, "NameTaken")
    assert audit.outcome == "conflict"


@pytest.mark.parametrize(
    "case",
    [
        (KubeUnavailableError("connection refused"), 503, "ApiUnavailable"),
        (KubeRefusedError(422, "invalid"), 422, "RefusedByApiServer"),
        (KubeRefusedError(400, "bad"), 403, "RefusedByApiServer"),
    ],
)
def test_api_errors_become_answers(signer, github_example, creator, case) -> None:
    error, status, code = case
    creator.error = error
    with pytest.raises(IngressError) as refused:
        _run(Pipeline(creator, inline_limit=1 << 20), signer, github_example("pull_request.opened"))
    assert (refused.value.status, refused.value.code) == (status, code)


def test_a_synchronous_creator_runs_in_the_executor(signer, github_example) -> None:
    class Sync:
        def __init__(self) -> None:
            self.made: list[str] = []

        def signing_secret(self, namespace: str, secret: str, source: str) -> str:
            return signer.secret

        def create_session(self, manifest: dict[str, Any]) -> None:
            self.made.append(manifest["metadata"]["name"])

    sync = Sync()
    assert (
        _run(
            Pipeline(sync, inline_limit=1 << 20), signer, github_example("pull_request.opened")
        ).outcome
        == "created"
    )
    assert sync.made == [_name(github_example("pull_request.opened"))]


def test_a_large_payload_is_stored_before_the_session(
    signer, github_example, creator, store
) -> None:
    payload = github_example("pull_request.opened")
    payload["pull_request"]["body"] = "x" * 5_000
    store.error = StoreUnavailableError("down")
    pipe = Pipeline(creator, inline_limit=1_000, store=store, store_prefix="p")
    with pytest.raises(IngressError) as refused:
        _run(pipe, signer, payload)
    assert (refused.value.status, refused.value.code) == (503, "StoreUnavailable")
    assert refused.value.headers == {"Retry-After": "5"}
    assert creator.creates == 0  # never a Session pointing at nothing
    store.error = None
    assert _run(pipe, signer, payload).outcome == "created"
    digest = hashlib.sha256(json.dumps(payload).encode()).hexdigest()
    assert list(store.objects) == [f"p/team-a/payloads/github/{digest}.json"]


def test_offload_refuses_a_different_payload_under_the_same_delivery(store) -> None:
    delivery = events.Delivery("github", "push", GUID, {})
    manifest: dict[str, Any] = {
        "metadata": {"namespace": "team-a"},
        "spec": {"trigger": {"payload": {"a": 1}}},
    }
    offload_payload(store, "", manifest, b"one", delivery)
    assert manifest["spec"]["trigger"]["payloadRef"]["size"] == 3
    offload_payload(store, "", manifest, b"one", delivery)  # a redelivery: fine
    with pytest.raises(IngressError) as refused:
        offload_payload(store, "", manifest, b"two", delivery)
    assert (refused.value.status, refused.value.code) == (409, "PayloadConflict")


def test_a_signing_secret_name_that_walks_the_path_is_refused(
    signer, github_example, creator
) -> None:
    """A policy stored before the schema checked names: the Secret path builder refuses
    the name, nothing is verified with another namespace's Secret, nothing is created."""
    read = creator.signing_secret

    async def path_checked(namespace: str, secret: str, source: str) -> str | None:
        secret_path(namespace, secret)  # what kube.AsyncIngressKube builds its request with
        return await read(namespace, secret, source)

    creator.signing_secret = path_checked
    creator.secrets["github"] = signer.secret
    tenant = dataclasses.replace(
        replay.tenant_of("team-b", SPEC), signing_secret="../../team-alpha/secrets/x"
    )
    body = json.dumps(github_example("pull_request.opened")).encode()
    headers = {
        "content-type": "application/json",
        "x-github-event": "pull_request",
        "x-github-delivery": GUID,
        "x-hub-signature-256": signer.github(body),
    }
    with pytest.raises(IngressError) as refused:
        asyncio.run(
            Pipeline(creator, inline_limit=1 << 20).run(
                tenant, "github", headers, body, Audit(source="github", trace_id="t")
            )
        )
    assert (refused.value.status, refused.value.code) == (403, "InvalidSigningSecretRef")
    assert "signingSecretRef.name" in refused.value.message
    assert creator.secret_reads == 0 and creator.creates == 0
    # the same tenant with a valid name verifies and creates
    ok = dataclasses.replace(tenant, signing_secret="signing")
    asyncio.run(
        Pipeline(creator, inline_limit=1 << 20).run(
            ok, "github", headers, body, Audit(source="github", trace_id="t")
        )
    )
    assert creator.secret_reads == 1 and creator.creates == 1


# --- replayed bodies (issue 17, finding 5) -------------------------------------------------


def test_the_same_body_under_a_new_delivery_id_is_the_same_session(
    signer, github_example, creator
) -> None:
    payload = github_example("pull_request.opened")
    pipe = Pipeline(creator, inline_limit=1 << 20)
    assert _run(pipe, signer, payload).outcome == "created"
    audit = Audit(source="github", trace_id="t2")
    again = _run(pipe, signer, payload, audit, delivery="a-new-id-from-a-replayer")
    assert (again.outcome, audit.reason, audit.session) == (
        "duplicate",
        "ReplayedBody",
        _name(payload),
    )
    assert list(creator.sessions) == [("team-a", _name(payload))]
    stored = creator.sessions[("team-a", _name(payload))]
    assert stored["spec"]["trigger"]["deliveryId"] == GUID  # the first delivery's record


def test_the_sender_s_own_redelivery_is_a_plain_duplicate(signer, github_example, creator) -> None:
    payload = github_example("pull_request.opened")
    pipe = Pipeline(creator, inline_limit=1 << 20)
    _run(pipe, signer, payload)
    audit = Audit(source="github", trace_id="t2")
    assert _run(pipe, signer, payload, audit).outcome == "duplicate"
    assert audit.reason == ""


def test_a_different_body_is_a_different_session(signer, github_example, creator) -> None:
    pipe = Pipeline(creator, inline_limit=1 << 20)
    one, two = github_example("pull_request.opened"), github_example("pull_request.opened")
    two["number"] = 3
    _run(pipe, signer, one)
    assert _run(pipe, signer, two, delivery="another").outcome == "created"
    assert len(creator.sessions) == 2


def test_a_large_body_replayed_is_stored_once(signer, github_example, creator, store) -> None:
    payload = github_example("pull_request.opened")
    payload["pull_request"]["body"] = "x" * 5_000
    pipe = Pipeline(creator, inline_limit=1_000, store=store, store_prefix="p")
    assert _run(pipe, signer, payload).outcome == "created"
    assert _run(pipe, signer, payload, delivery="replayed").outcome == "duplicate"
    assert len(store.objects) == 1 and len(creator.sessions) == 1
