"""The generic source on the real ingress and API server, with requests signed by the
standardwebhooks library as a sender would: a valid one becomes a Session whose delivery
id is its webhook-id, a repeat answers 200 with the same body, a bad signature and a stale
timestamp are 401 and create nothing."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from standardwebhooks import Webhook

from ambient.webhooks.ingress.events import session_name

from .test_ingress_sessions import ingress, sessions  # noqa: F401 (ingress: a fixture)

pytestmark = pytest.mark.integration

SIGNING = "whsec_" + base64.b64encode(os.urandom(32)).decode()


def generic_tenant(cluster, namespace: str) -> str:
    """A generic key and its Standard Webhooks secret under data key ``generic``."""
    key = f"generic-{uuid.uuid4().hex}"
    cluster.core.create_namespaced_secret(
        namespace,
        {
            "metadata": {"name": "ingress-signing"},
            "data": {"generic": base64.b64encode(SIGNING.encode()).decode()},
        },
    )
    cluster.apply(
        {
            "apiVersion": "ambient.ai/v1alpha1",
            "kind": "NamespacePolicy",
            "metadata": {"name": "policy", "namespace": namespace},
            "spec": {
                "webhookAuth": {
                    "apiKeys": {"generic": hashlib.sha256(key.encode()).hexdigest()},
                    "signingSecretRef": {"name": "ingress-signing"},
                },
                "defaults": {"framework": {"type": "script", "config": {"command": ["true"]}}},
            },
        }
    )
    return key


def send(
    url: str,
    key: str,
    payload: dict[str, Any],
    msg_id: str,
    *,
    at: datetime | None = None,
    secret: str = SIGNING,
) -> httpx.Response:
    body = json.dumps(payload)
    stamp = at or datetime.now(UTC)
    signature = Webhook(secret).sign(msg_id, stamp, body)
    return httpx.post(
        f"{url}/webhooks/generic/{key}",
        content=body.encode(),
        timeout=30,
        headers={
            "Content-Type": "application/json",
            "webhook-id": msg_id,
            "webhook-timestamp": str(int(stamp.timestamp())),
            "webhook-signature": signature,
        },
    )


def test_signed_delivery_repeat_bad_signature_and_stale_timestamp(
    cluster,
    ingress,  # noqa: F811
    namespace,
) -> None:
    key = generic_tenant(cluster, namespace)
    payload = {"type": "pipeline.failed", "data": {"project": "shop", "pipeline": 4711}}
    msg_id = f"msg_{uuid.uuid4().hex}"
    first = cluster.wait_for(
        "the key to be indexed",
        lambda: r if (r := send(ingress, key, payload, msg_id)).status_code != 401 else None,
        30,
    )
    assert first.status_code == 202, first.text
    assert first.json() == {"namespace": namespace, "session": session_name("generic", msg_id)}
    (stored,) = sessions(cluster, namespace)
    trigger = stored["spec"]["trigger"]
    assert (trigger["source"], trigger["event"], trigger["deliveryId"]) == (
        "generic",
        "pipeline.failed",
        msg_id,
    )
    assert trigger["payload"] == payload
    # The sender's retry of the same message: signed anew, same webhook-id.
    again = send(ingress, key, payload, msg_id)
    assert (again.status_code, again.json()) == (200, first.json())

    other = f"msg_{uuid.uuid4().hex}"
    wrong_secret = "whsec_" + base64.b64encode(os.urandom(32)).decode()
    bad = send(ingress, key, payload, other, secret=wrong_secret)
    stale = send(ingress, key, payload, other, at=datetime.now(UTC) - timedelta(minutes=6))
    for refused in (bad, stale):
        assert refused.status_code == 401, refused.text
        assert refused.json()["error_code"] == "InvalidSignature"
    assert "too old" in stale.json()["message"]
    assert [s["metadata"]["name"] for s in sessions(cluster, namespace)] == [
        stored["metadata"]["name"]
    ]
