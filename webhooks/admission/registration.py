"""The ValidatingWebhookConfiguration that registers the webhook (pure; the chart renders
the same shape). Fails closed: failurePolicy Fail, explicit operations, a short timeout."""

from __future__ import annotations

import base64
from collections.abc import Iterable, Sequence
from typing import Any

from ambient.crds.models import GROUP, VERSION
from ambient.runners.registry import Registry
from ambient.webhooks.admission import fastpath

NAME = "ambient-admission"
WEBHOOK = "validate.ambient.ai"
PATH = "/validate"
MUTATE_NAME = "ambient-admission-stamp"
MUTATE_WEBHOOK = "stamp.ambient.ai"
MUTATE_PATH = "/mutate"


def webhook_configuration(
    ca_bundle: bytes,
    *,
    url: str | None = None,
    service: tuple[str, str, int] | None = None,
    product_namespace: str = "ambient-system",
    name: str = NAME,
    match_labels: dict[str, str] | None = None,
    timeout_seconds: int = 5,
    match_conditions: list[dict[str, str]] | None = None,
) -> dict[str, Any]:
    """By ``url`` (tests, out-of-cluster) or by ``service`` (namespace, name, port)."""
    if (url is None) == (service is None):
        raise ValueError("give exactly one of url or service")
    if not 1 <= timeout_seconds <= 5:
        raise ValueError("timeoutSeconds must be 1 to 5: a slow webhook stalls every write")
    client: dict[str, Any] = {"caBundle": base64.b64encode(ca_bundle).decode()}
    if url is not None:
        client["url"] = url
    else:
        assert service is not None
        client["service"] = {
            "namespace": service[0],
            "name": service[1],
            "port": service[2],
            "path": PATH,
        }
    selector: dict[str, Any] = {
        "matchExpressions": [
            {
                "key": "kubernetes.io/metadata.name",
                "operator": "NotIn",
                "values": sorted({"kube-system", product_namespace}),
            }
        ]
    }
    if match_labels:
        selector["matchLabels"] = dict(match_labels)
    conditions = {"matchConditions": match_conditions} if match_conditions else {}
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": name},
        "webhooks": [
            {
                **conditions,
                "name": WEBHOOK,
                "admissionReviewVersions": ["v1"],
                "sideEffects": "None",
                "failurePolicy": "Fail",
                "matchPolicy": "Equivalent",
                "timeoutSeconds": timeout_seconds,
                "clientConfig": client,
                "namespaceSelector": selector,
                "rules": [
                    {
                        "apiGroups": [GROUP],
                        "apiVersions": [VERSION],
                        "operations": ["CREATE", "UPDATE"],
                        "resources": ["sessions", "sessions/status", "namespacepolicies"],
                        "scope": "Namespaced",
                    }
                ],
            }
        ],
    }


def mutating_webhook_configuration(
    ca_bundle: bytes,
    *,
    url: str | None = None,
    service: tuple[str, str, int] | None = None,
    product_namespace: str = "ambient-system",
    name: str = MUTATE_NAME,
    match_labels: dict[str, str] | None = None,
    timeout_seconds: int = 5,
    match_conditions: list[dict[str, str]] | None = None,
    operations: Sequence[str] = ("CREATE", "UPDATE"),
) -> dict[str, Any]:
    """The MutatingWebhookConfiguration that stamps a Session's creator (and a canceller
    who did not say): the same client, selector and fail-closed settings as the validating
    one, for Sessions only, reinvoked never (it only reads userInfo). ``operations``: only
    UPDATE where a MutatingAdmissionPolicy stamps the creator of each create."""
    validating = webhook_configuration(
        ca_bundle,
        url=url,
        service=service,
        product_namespace=product_namespace,
        name=name,
        match_labels=match_labels,
        timeout_seconds=timeout_seconds,
    )
    hook = {k: v for k, v in validating["webhooks"][0].items() if k != "matchConditions"}
    client = dict(hook["clientConfig"])
    if "url" in client:
        client["url"] = client["url"].removesuffix(PATH) + MUTATE_PATH
    else:
        client["service"] = {**client["service"], "path": MUTATE_PATH}
    return {
        **validating,
        "kind": "MutatingWebhookConfiguration",
        "webhooks": [
            {
                **hook,
                "name": MUTATE_WEBHOOK,
                "clientConfig": client,
                "reinvocationPolicy": "Never",
                "rules": [
                    {**hook["rules"][0], "resources": ["sessions"], "operations": [*operations]}
                ],
                **({"matchConditions": match_conditions} if match_conditions else {}),
            }
        ],
    }


def registrations(
    ca_bundle: bytes,
    registry: Registry,
    *,
    url: str | None = None,
    service: tuple[str, str, int] | None = None,
    product_namespace: str = "ambient-system",
    name: str = NAME,
    match_labels: dict[str, str] | None = None,
    operator_usernames: Iterable[str] = (),
    operator_groups: Iterable[str] = (),
    fast_path: bool = True,
    mutating_policy: bool = False,
) -> list[dict[str, Any]]:
    """Everything that registers admission, in the order to apply it: with ``fast_path``
    the ValidatingAdmissionPolicy (before the webhook that relies on it skips creates),
    with ``mutating_policy`` (the cluster serves fastpath.MUTATING_POLICY_API) the
    creator's MutatingAdmissionPolicy, then the mutating and validating webhooks, called
    only when needed (``fastpath``). Without ``fast_path`` (e.g. a default policy for
    namespaces without one, which the API server cannot see) every write reaches them."""
    where: dict[str, Any] = {
        "url": url,
        "service": service,
        "product_namespace": product_namespace,
        "match_labels": match_labels,
    }
    objects: list[dict[str, Any]] = []
    if fast_path:
        objects += fastpath.session_policy(
            f"{name}-sessions",
            registry,
            product_namespace=product_namespace,
            match_labels=match_labels,
        )
    if fast_path and mutating_policy:
        objects += fastpath.creator_policy(
            f"{name}-creator", product_namespace=product_namespace, match_labels=match_labels
        )
    objects.append(
        mutating_webhook_configuration(
            ca_bundle,
            **where,
            name=f"{name}-stamp",
            match_conditions=fastpath.stamp_conditions() if fast_path else None,
            # The creator's policy stamps every create that needs it: the API server need
            # not even weigh the webhook's conditions for one (a CEL activation each).
            operations=("UPDATE",) if fast_path and mutating_policy else ("CREATE", "UPDATE"),
        )
    )
    objects.append(
        webhook_configuration(
            ca_bundle,
            **where,
            name=name,
            match_conditions=(
                fastpath.validate_conditions(operator_usernames, operator_groups)
                if fast_path
                else None
            ),
        )
    )
    return objects
