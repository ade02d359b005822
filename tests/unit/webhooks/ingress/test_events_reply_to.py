"""The ingress stores where the outcome is replied to in the Session it builds
(spec.trigger.replyTo), also when the payload itself is offloaded to the store."""

from __future__ import annotations

import json

from ambient.crds.models import Session, SessionDefaults
from ambient.webhooks.ingress import events

GUID = "72d3162e-cc78-11e3-81ab-4c9367dc0958"


def test_pull_request_session_names_its_pull_request(github_example) -> None:
    payload = github_example("pull_request.opened")
    headers = {"x-github-event": "pull_request", "x-github-delivery": GUID}
    delivery = events.parse("github", headers, json.dumps(payload).encode(), "application/json")
    manifest = events.build_session(delivery, "team-a", SessionDefaults())
    events.with_payload_ref(manifest, "s3://b/team-a/payloads/x.json", 10, "0" * 64)
    trigger = Session.model_validate(manifest).spec.trigger
    assert trigger.payload == {}  # offloaded, and the reply target is still there
    assert trigger.reply_to is not None
    assert (trigger.reply_to.repository, trigger.reply_to.number) == ("Codertocat/Hello-World", 2)
    assert trigger.reply_to.head_sha == payload["pull_request"]["head"]["sha"]


def test_a_delivery_without_a_place_gets_no_reply_to(github_example) -> None:
    headers = {"x-github-event": "push", "x-github-delivery": GUID}
    body = json.dumps(github_example("push")).encode()
    delivery = events.parse("github", headers, body, "application/json")
    manifest = events.build_session(delivery, "team-a", SessionDefaults())
    assert "replyTo" not in manifest["spec"]["trigger"]
