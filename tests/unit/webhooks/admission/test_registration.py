"""The ValidatingWebhookConfiguration that registers the admission webhook: fails closed."""

from __future__ import annotations

import base64

import pytest

from ambient.webhooks.admission.registration import PATH, webhook_configuration


def test_by_service_it_fails_closed_on_sessions_and_policies() -> None:
    body = webhook_configuration(b"CA", service=("ambient-system", "ambient-admission", 443))
    (hook,) = body["webhooks"]
    assert hook["failurePolicy"] == "Fail" and hook["sideEffects"] == "None"
    assert hook["clientConfig"]["caBundle"] == base64.b64encode(b"CA").decode()
    assert hook["clientConfig"]["service"] == {
        "namespace": "ambient-system",
        "name": "ambient-admission",
        "port": 443,
        "path": PATH,
    }
    (rule,) = hook["rules"]
    assert rule["operations"] == ["CREATE", "UPDATE"]
    assert rule["resources"] == ["sessions", "sessions/status", "namespacepolicies"]


def test_the_system_namespaces_are_left_out() -> None:
    body = webhook_configuration(
        b"CA", url="https://127.0.0.1:9443/validate", product_namespace="p"
    )
    (expr,) = body["webhooks"][0]["namespaceSelector"]["matchExpressions"]
    assert expr["operator"] == "NotIn" and expr["values"] == ["kube-system", "p"]
    assert body["webhooks"][0]["clientConfig"]["url"] == "https://127.0.0.1:9443/validate"


def test_match_labels_narrow_it_to_labelled_namespaces() -> None:
    body = webhook_configuration(b"CA", url="https://x/validate", match_labels={"team": "a"})
    assert body["webhooks"][0]["namespaceSelector"]["matchLabels"] == {"team": "a"}


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"url": "https://x/validate", "service": ("ns", "svc", 443)},
        {"url": "https://x/validate", "timeout_seconds": 10},
        {"url": "https://x/validate", "timeout_seconds": 0},
    ],
)
def test_it_refuses_what_would_not_fail_closed_quickly(kwargs) -> None:
    with pytest.raises(ValueError):
        webhook_configuration(b"CA", **kwargs)
