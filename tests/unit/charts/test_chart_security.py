"""The chart's least-privilege parts, rendered by the real helm (issue 17, findings 4 and
11): Secrets readable only by their fixed names, the stamping webhook, the admission
webhook reachable from the API server's addresses only and authenticating it, and the
operator allowed to give runners their NetworkPolicy."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from ambient.crds.credentials import CREDENTIAL_SECRETS, WEBHOOK_SIGNING_SECRET

ROOT = Path(__file__).resolve().parents[3]
CHART = ROOT / "charts" / "ambient"


@pytest.fixture(scope="module")
def helm() -> str:
    """The pinned helm hack/build-tools.sh caches (built once per machine)."""
    out = subprocess.run(
        [str(ROOT / "hack" / "build-tools.sh"), "helm"],
        capture_output=True, text=True, check=True, timeout=1800,
    ).stdout  # fmt: skip
    return out.strip().split("=", 1)[1]


def _render(helm: str, *settings: str) -> list[dict[str, Any]]:
    args = [helm, "template", "x", str(CHART), "--kube-version", "1.35.4"]
    for setting in settings:
        args += ["--set", setting]
    out = subprocess.run(args, capture_output=True, text=True, check=True, timeout=120).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def _rules(docs: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    for doc in docs:
        if doc["kind"] in ("ClusterRole", "Role"):
            for rule in doc.get("rules") or []:
                yield doc["metadata"]["name"], rule


def test_secrets_are_readable_only_by_their_fixed_names(helm: str) -> None:
    readers = {}
    for name, rule in _rules(_render(helm)):
        if "secrets" in rule.get("resources", []):
            assert rule["verbs"] == ["get"], name
            readers[name] = rule.get("resourceNames")
    assert set(readers) == {"x-ambient-operator", "x-ambient-ingress"}
    for names in readers.values():
        assert names == [*CREDENTIAL_SECRETS, WEBHOOK_SIGNING_SECRET]
    more = _render(helm, "secrets.signingSecretNames={ambient-webhook-signing,team-hooks}")
    for name, rule in _rules(more):
        if "secrets" in rule.get("resources", []):
            assert rule["resourceNames"][-2:] == [WEBHOOK_SIGNING_SECRET, "team-hooks"], name


def test_a_signing_secret_name_must_be_a_dns_name(helm: str) -> None:
    proc = subprocess.run(
        [helm, "template", "x", str(CHART), "--set", "secrets.signingSecretNames={../x}"],
        capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip
    assert proc.returncode != 0 and "signingSecretNames" in proc.stderr


def test_the_stamping_webhook_fails_closed_on_sessions_only(helm: str) -> None:
    docs = _render(helm)
    (mutating,) = [d for d in docs if d["kind"] == "MutatingWebhookConfiguration"]
    (hook,) = mutating["webhooks"]
    assert hook["clientConfig"]["service"]["path"] == "/mutate"
    assert hook["failurePolicy"] == "Fail" and hook["reinvocationPolicy"] == "Never"
    assert hook["rules"][0]["resources"] == ["sessions"]
    (validating,) = [d for d in docs if d["kind"] == "ValidatingWebhookConfiguration"]
    assert hook["namespaceSelector"] == validating["webhooks"][0]["namespaceSelector"]


def _admission(docs: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, Any]]:
    (policy,) = [
        d
        for d in docs
        if d["kind"] == "NetworkPolicy" and d["metadata"]["name"].endswith("-admission")
    ]
    (deployment,) = [
        d
        for d in docs
        if d["kind"] == "Deployment" and d["metadata"]["name"].endswith("-admission")
    ]
    return policy, deployment


def test_the_webhook_takes_connections_from_the_api_server_sources_with_its_certificate(
    helm: str,
) -> None:
    policy, deployment = _admission(_render(helm))
    assert "from" not in policy["spec"]["ingress"][0]  # not set: documented as open
    env = {e["name"] for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert "AMBIENT_ADMISSION_CLIENT_CA_FILE" not in env
    policy, deployment = _admission(
        _render(
            helm,
            "networkPolicy.apiServerSourceCIDRs={10.0.0.0/24,192.168.10.5/32}",
            "admission.clientCA.configMapName=apiserver-webhook-client-ca",
        )
    )
    assert policy["spec"]["ingress"][0]["from"] == [
        {"ipBlock": {"cidr": "10.0.0.0/24"}},
        {"ipBlock": {"cidr": "192.168.10.5/32"}},
    ]
    pod = deployment["spec"]["template"]["spec"]
    env = {e["name"]: e.get("value") for e in pod["containers"][0]["env"]}
    assert env["AMBIENT_ADMISSION_CLIENT_CA_FILE"] == "/etc/ambient/client-ca/ca.crt"
    assert env["AMBIENT_ADMISSION_SIGNING_SECRET_NAMES"] == WEBHOOK_SIGNING_SECRET
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["client-ca"]["configMap"]["name"] == "apiserver-webhook-client-ca"


def test_the_operator_may_give_runners_their_network_policy(helm: str) -> None:
    rules = [r for n, r in _rules(_render(helm)) if n == "x-ambient-operator"]
    assert any("networkpolicies" in r["resources"] and "create" in r["verbs"] for r in rules)


def test_the_operator_requires_a_policy_and_fences_runners_by_default(helm: str) -> None:
    (deployment,) = [
        d for d in _render(helm)
        if d["kind"] == "Deployment" and d["metadata"]["name"].endswith("-operator")
    ]  # fmt: skip
    env = {
        e["name"]: e.get("value")
        for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert env["AMBIENT_REQUIRE_NAMESPACE_POLICY"] == "true"
    assert "169.254.0.0/16" in env["AMBIENT_RUNNER_EGRESS_EXCEPT"].split(",")
    assert env["AMBIENT_RUNNER_APISERVER_PORTS"] == "443,6443"
