"""The chart's least-privilege parts, rendered by the real helm (issue 17, findings 4 and
11): Secrets readable only by their fixed names, the stamping webhook, the admission
webhook reachable from the API server's addresses only and authenticating it, and the
operator allowed to give runners their NetworkPolicy."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ambient.crds.credentials import CREDENTIAL_SECRETS, WEBHOOK_SIGNING_SECRET
from tests.unit.charts.render import refused, render


def _rules(docs: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    for doc in docs:
        if doc["kind"] in ("ClusterRole", "Role"):
            for rule in doc.get("rules") or []:
                yield doc["metadata"]["name"], rule


def test_secrets_are_readable_only_by_their_fixed_names() -> None:
    readers = {}
    for name, rule in _rules(render()):
        if "secrets" in rule.get("resources", []):
            assert rule["verbs"] == ["get"], name
            readers[name] = rule.get("resourceNames")
    assert set(readers) == {"x-ambient-operator", "x-ambient-ingress"}
    for names in readers.values():
        assert names == [*CREDENTIAL_SECRETS, WEBHOOK_SIGNING_SECRET]
    more = render("secrets.signingSecretNames={ambient-webhook-signing,team-hooks}")
    for name, rule in _rules(more):
        if "secrets" in rule.get("resources", []):
            assert rule["resourceNames"][-2:] == [WEBHOOK_SIGNING_SECRET, "team-hooks"], name


def test_a_signing_secret_name_must_be_a_dns_name() -> None:
    proc = refused("secrets.signingSecretNames={../x}")
    assert proc.returncode != 0 and "signingSecretNames" in proc.stderr


def test_the_stamping_webhook_fails_closed_on_sessions_only() -> None:
    docs = render()
    (mutating,) = [d for d in docs if d["kind"] == "MutatingWebhookConfiguration"]
    (hook,) = mutating["webhooks"]
    assert hook["clientConfig"]["service"]["path"] == "/mutate"
    assert hook["failurePolicy"] == "Fail" and hook["reinvocationPolicy"] == "Never"
    assert hook["rules"][0]["resources"] == ["sessions"]
    (validating,) = [d for d in docs if d["kind"] == "ValidatingWebhookConfiguration"]
    assert hook["namespaceSelector"] == validating["webhooks"][0]["namespaceSelector"]


def test_where_the_creators_policy_stamps_creates_the_webhook_sees_updates_only() -> None:
    def stamping(docs: list[dict[str, Any]]) -> tuple[list[str], list[str]]:
        (mutating,) = [d for d in docs if d["kind"] == "MutatingWebhookConfiguration"]
        policies = [d["kind"] for d in docs if d["kind"].startswith("MutatingAdmissionPolicy")]
        return mutating["webhooks"][0]["rules"][0]["operations"], policies

    fast = "admission.fastPath.enabled=true"
    assert stamping(render(fast)) == (["CREATE", "UPDATE"], [])  # the cluster serves none
    served = ("admissionregistration.k8s.io/v1beta1/MutatingAdmissionPolicy",)
    assert stamping(render(fast, api_versions=served)) == (
        ["UPDATE"],
        ["MutatingAdmissionPolicy", "MutatingAdmissionPolicyBinding"],
    )
    for off in ("admission.fastPath.mutatingPolicy=false", "admission.fastPath.enabled=false"):
        assert stamping(render(fast, off, api_versions=served)) == (["CREATE", "UPDATE"], [])


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


def test_the_webhook_takes_connections_from_the_api_server_sources_with_its_certificate() -> None:
    policy, deployment = _admission(render())
    assert "from" not in policy["spec"]["ingress"][0]  # not set: documented as open
    env = {e["name"] for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert "AMBIENT_ADMISSION_CLIENT_CA_FILE" not in env
    policy, deployment = _admission(
        render(
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


def test_the_operator_may_give_runners_their_network_policy() -> None:
    rules = [r for n, r in _rules(render()) if n == "x-ambient-operator"]
    assert any("networkpolicies" in r["resources"] and "create" in r["verbs"] for r in rules)


def test_the_operator_requires_a_policy_and_fences_runners_by_default() -> None:
    (deployment,) = [
        d for d in render()
        if d["kind"] == "Deployment" and d["metadata"]["name"].endswith("-operator")
    ]  # fmt: skip
    env = {
        e["name"]: e.get("value")
        for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert env["AMBIENT_REQUIRE_NAMESPACE_POLICY"] == "true"
    assert "169.254.0.0/16" in env["AMBIENT_RUNNER_EGRESS_EXCEPT"].split(",")
    assert env["AMBIENT_RUNNER_APISERVER_PORTS"] == "443,6443"
