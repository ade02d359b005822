"""The Helm chart on the real local control plane: install creates every object, pods pass
Pod Security Admission `restricted`, and an upgrade keeps the webhook's CA and leaves
existing Sessions untouched.

Pods stay simulated (kwok nodes): images are never pulled. The chart's cluster-scoped
objects get a unique fullnameOverride, and the webhook's namespaceSelector requires a label
no namespace carries, so other tests in the same run never reach this webhook. The release
is uninstalled at the end; the CRDs are the test run's (crds.install=false).
"""

from __future__ import annotations

import base64
import json
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "ambient"

pytestmark = pytest.mark.integration


class Release:
    """One helm release of the chart in its own namespace."""

    def __init__(self, cluster: Any, helm: str, tmp: Path) -> None:
        suffix = uuid.uuid4().hex[:8]
        self.cluster = cluster
        self.helm_bin = helm
        self.tmp = tmp
        self.name = "ambient"
        self.namespace = f"chart-{suffix}"
        self.fullname = f"amb-{suffix}"
        self.base_values: dict[str, Any] = {
            "fullnameOverride": self.fullname,
            # No namespace carries this label: other tests' Sessions never reach the
            # webhook, whose pods are only simulated here.
            "admission": {"namespaceSelectorLabels": {"ambient.ai/chart-test": suffix}},
            # The test run applies the CRDs (tests/conftest.py) and shares them across
            # releases: a cluster that manages CRDs separately.
            # test_chart_crd_upgrade.py covers the chart installing and upgrading them.
            "crds": {"install": False},
        }

    def helm(self, *args: str) -> str:
        proc = subprocess.run(
            [self.helm_bin, *args, "--namespace", self.namespace],
            capture_output=True,
            text=True,
            env=self.cluster.env,
            timeout=300,
            check=False,
        )
        assert proc.returncode == 0, f"helm {' '.join(args)} failed: {proc.stderr}"
        return proc.stdout

    def values_file(self, name: str, extra: dict[str, Any]) -> str:
        values = json.loads(json.dumps(self.base_values))
        for key, value in extra.items():
            values.setdefault(key, {}).update(value)
        path = self.tmp / f"{name}.yaml"
        # JSON is YAML with every string quoted: PyYAML leaves a value like "1234e567"
        # bare, and helm's Go YAML then reads it as a number (a random suffix did).
        path.write_text(json.dumps(values, indent=2))
        return str(path)

    def manifest(self) -> list[dict[str, Any]]:
        text = self.helm("get", "manifest", self.name)
        return [d for d in yaml.safe_load_all(text) if d]

    def get(self, kind: str, name: str, namespaced: bool = True) -> dict[str, Any]:
        args = ["get", kind, name, "-o", "json"]
        if namespaced:
            args += ["-n", self.namespace]
        result: dict[str, Any] = json.loads(self.cluster.kubectl(*args).stdout)
        return result


@pytest.fixture(scope="module")
def helm_bin() -> str:
    out = subprocess.run(
        [str(ROOT / "hack" / "build-tools.sh"), "helm"],
        capture_output=True,
        text=True,
        check=True,
        timeout=1800,
    ).stdout
    return out.strip().split("=", 1)[1]


@pytest.fixture
def release(cluster: Any, helm_bin: str, tmp_path: Path) -> Iterator[Release]:
    rel = Release(cluster, helm_bin, tmp_path)
    # The release namespace enforces Pod Security `restricted`: a pod that does not pass
    # is refused, so its ReplicaSet could not create it.
    cluster.core.create_namespace(
        {
            "metadata": {
                "name": rel.namespace,
                "labels": {
                    "pod-security.kubernetes.io/enforce": "restricted",
                    "pod-security.kubernetes.io/enforce-version": "latest",
                },
            }
        }
    )
    yield rel
    subprocess.run(
        [helm_bin, "uninstall", rel.name, "--namespace", rel.namespace, "--wait=false"],
        env=cluster.env,
        capture_output=True,
        timeout=120,
        check=False,
    )
    cluster.kubectl("delete", "namespace", rel.namespace, "--wait=false", check=False)


def _pods(release: Release, component: str) -> list[dict[str, Any]]:
    selector = f"app.kubernetes.io/instance={release.name},app.kubernetes.io/component={component}"
    out = release.cluster.kubectl(
        "get", "pods", "-n", release.namespace, "-l", selector, "-o", "json"
    ).stdout
    items: list[dict[str, Any]] = json.loads(out)["items"]
    return items


def test_install_creates_every_object_and_pods_pass_restricted(release: Release) -> None:
    release.helm("install", release.name, str(CHART), "-f", release.values_file("v1", {}))
    objects = release.manifest()
    kinds = {d["kind"] for d in objects}
    assert {
        "Deployment",
        "Service",
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "ConfigMap",
        "Secret",
        "PodDisruptionBudget",
        "NetworkPolicy",
        "ValidatingWebhookConfiguration",
        "MutatingWebhookConfiguration",
    } <= kinds
    for obj in objects:
        namespaced = obj["kind"] not in {
            "ClusterRole",
            "ClusterRoleBinding",
            "ValidatingWebhookConfiguration",
            "MutatingWebhookConfiguration",
        }
        live = release.get(obj["kind"], obj["metadata"]["name"], namespaced)
        assert live["metadata"]["labels"]["app.kubernetes.io/instance"] == release.name

    # Every Deployment's pods were admitted under `restricted` (kwok then runs them).
    for component, replicas in (("operator", 2), ("admission", 2), ("ingress", 2)):
        pods = release.cluster.wait_for(
            f"{replicas} {component} pod(s)",
            lambda c=component, n=replicas: len(_pods(release, c)) == n and _pods(release, c),
        )
        spec = pods[0]["spec"]
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["containers"][0]["securityContext"]["readOnlyRootFilesystem"] is True

    # The webhook: fail closed, and the CA that signed the serving certificate.
    webhook = release.get(
        "validatingwebhookconfiguration", f"{release.fullname}-admission", namespaced=False
    )["webhooks"][0]
    assert webhook["failurePolicy"] == "Fail"
    assert webhook["timeoutSeconds"] == 5
    excluded = webhook["namespaceSelector"]["matchExpressions"][0]["values"]
    assert {"kube-system", release.namespace} <= set(excluded)
    secret = release.get("secret", f"{release.fullname}-admission-tls")
    assert webhook["clientConfig"]["caBundle"] == secret["data"]["ca.crt"]
    _verify_chain(release.tmp, secret["data"], f"{release.fullname}-admission")

    _check_rbac(release)


def _can(release: Release, component: str, *args: str) -> bool:
    who = f"system:serviceaccount:{release.namespace}:{release.fullname}-{component}"
    out = release.cluster.kubectl("auth", "can-i", *args, "--as", who, check=False)
    return out.stdout.strip() == "yes"


def _check_rbac(release: Release) -> None:
    """Least privilege, checked by the API server's own authorizer."""
    team = "default"
    assert _can(release, "operator", "create", "jobs.batch", "-n", team)
    assert _can(
        release, "operator", "update", "sessions.ambient.ai", "--subresource=status", "-n", team
    )
    assert not _can(release, "operator", "update", "sessions.ambient.ai", "-n", team)
    # get: a policy's notification signing secret, by its fixed names only (resourceNames);
    # never another Secret, never list, watch or write Secrets.
    for component in ("operator", "ingress"):
        assert _can(release, component, "get", "secrets/ambient-webhook-signing", "-n", team)
        assert _can(release, component, "get", "secrets/ambient-source-credentials", "-n", team)
        assert not _can(release, component, "get", "secrets/team-database", "-n", team)
        assert not _can(release, component, "get", "secrets", "-n", team)
    assert not _can(release, "operator", "list", "secrets", "-n", team)
    assert not _can(release, "operator", "update", "secrets", "-n", team)
    # delete: retention removes expired Sessions (after archiving them).
    assert _can(release, "operator", "delete", "sessions.ambient.ai", "-n", team)
    assert not _can(release, "operator", "delete", "namespacepolicies.ambient.ai", "-n", team)
    assert not _can(release, "operator", "escalate", "roles.rbac.authorization.k8s.io")
    assert _can(release, "ingress", "create", "sessions.ambient.ai", "-n", team)
    assert not _can(release, "ingress", "list", "secrets", "-n", team)
    assert not _can(release, "ingress", "update", "sessions.ambient.ai", "-n", team)
    assert _can(release, "admission", "list", "namespacepolicies.ambient.ai", "-n", team)
    assert not _can(release, "admission", "create", "sessions.ambient.ai", "-n", team)

    # The per-Session runner grant: the operator can create a Role limited to one Session
    # without the escalate verb, because it holds every permission the Role grants.
    operator = f"system:serviceaccount:{release.namespace}:{release.fullname}-operator"
    name = f"runner-{release.fullname}"
    release.cluster.kubectl(
        "create", "role", name, "-n", release.namespace, "--as", operator,
        "--verb=get,patch", "--resource=sessions.ambient.ai,sessions.ambient.ai/status",
        "--resource-name=some-session",
    )  # fmt: skip
    release.cluster.kubectl(
        "create", "rolebinding", name, "-n", release.namespace, "--as", operator,
        f"--role={name}", f"--serviceaccount={release.namespace}:{name}",
    )  # fmt: skip
    # ... but not one granting what it does not hold.
    refused = release.cluster.kubectl(
        "create", "role", f"{name}-more", "-n", release.namespace, "--as", operator,
        "--verb=list", "--resource=secrets",
    check=False)  # fmt: skip
    assert refused.returncode != 0
    assert "permissions not currently held" in refused.stderr


def _verify_chain(tmp: Path, data: dict[str, str], service: str) -> None:
    """openssl: the serving certificate chains to ca.crt and names the Service."""
    for key in ("ca.crt", "tls.crt"):
        (tmp / key).write_bytes(base64.b64decode(data[key]))
    proc = subprocess.run(
        ["openssl", "verify", "-CAfile", str(tmp / "ca.crt"), str(tmp / "tls.crt")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    text = subprocess.run(
        ["openssl", "x509", "-noout", "-ext", "subjectAltName", "-in", str(tmp / "tls.crt")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert f"DNS:{service}." in text


def test_upgrade_keeps_the_ca_and_leaves_sessions_untouched(
    release: Release, cluster: Any, operator: Any, namespace: str, make_session: Any
) -> None:
    release.helm("install", release.name, str(CHART), "-f", release.values_file("v1", {}))
    secret_before = release.get("secret", f"{release.fullname}-admission-tls")
    vwc = f"{release.fullname}-admission"
    ca_before = release.get("validatingwebhookconfiguration", vwc, False)["webhooks"][0][
        "clientConfig"
    ]["caBundle"]

    # A Session the run's operator has finished with: it waits for an approval.
    cluster.apply(make_session("kept", approval=True), namespace)
    before = cluster.wait_for(
        "AwaitingApproval",
        lambda: (
            (b := cluster.session(namespace, "kept")).get("status", {}).get("reason")
            == "AwaitingApproval"
            and b
        ),
    )

    changed = {"operator": {"workers": 8}, "ingress": {"replicas": 3}}
    release.helm("upgrade", release.name, str(CHART), "-f", release.values_file("v2", changed))

    # The upgrade did apply: the new values are live.
    ingress = release.get("deployment", f"{release.fullname}-ingress")
    assert ingress["spec"]["replicas"] == 3
    # ... and the CA and serving certificate are the ones made at install.
    secret_after = release.get("secret", f"{release.fullname}-admission-tls")
    assert secret_after["data"] == secret_before["data"]
    ca_after = release.get("validatingwebhookconfiguration", vwc, False)["webhooks"][0][
        "clientConfig"
    ]["caBundle"]
    assert ca_after == ca_before == secret_before["data"]["ca.crt"]

    after = cluster.session(namespace, "kept")
    assert after["metadata"]["uid"] == before["metadata"]["uid"]
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
    assert after["spec"] == before["spec"]
    assert after["status"] == before["status"]


@pytest.mark.parametrize(
    ("setting", "field"),
    [
        ("operator.replicas=11", "replicas"),
        ("admission.tls.mode=none", "mode"),
        ("admission.failurePolicy=Allow", "failurePolicy"),
        ("admision.enabled=false", "admision"),  # a typo is refused, not ignored
    ],
)
def test_values_schema_refuses_bad_values(helm_bin: str, setting: str, field: str) -> None:
    proc = subprocess.run(
        [helm_bin, "template", "x", str(CHART), "--kube-version", "1.35.4", "--set", setting],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode != 0
    assert field in proc.stderr
    assert proc.stdout == ""


def _render(helm_bin: str, *sets: str) -> list[dict[str, Any]]:
    args = [helm_bin, "template", "x", str(CHART), "-n", "prod", "--kube-version", "1.35.4"]
    for s in sets:
        args += ["--set", s]
    out = subprocess.run(args, capture_output=True, text=True, timeout=120, check=True).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def test_cert_manager_mode_renders_certificates_and_ca_injection(helm_bin: str) -> None:
    docs = _render(helm_bin, "admission.tls.mode=cert-manager")
    kinds = [d["kind"] for d in docs]
    assert kinds.count("Certificate") == 2  # the CA and the serving certificate
    assert kinds.count("Issuer") == 2  # self-signed root, then the CA issuer
    assert not [d for d in docs if d["kind"] == "Secret"]  # cert-manager writes it
    vwc = next(d for d in docs if d["kind"] == "ValidatingWebhookConfiguration")
    assert vwc["metadata"]["annotations"]["cert-manager.io/inject-ca-from"] == (
        "prod/x-ambient-admission"
    )
    assert "caBundle" not in vwc["webhooks"][0]["clientConfig"]
    serving = next(d for d in docs if d["kind"] == "Certificate" and not d["spec"].get("isCA"))
    assert serving["spec"]["secretName"] == "x-ambient-admission-tls"
    assert "x-ambient-admission.prod.svc" in serving["spec"]["dnsNames"]


def test_watching_some_namespaces_grants_roles_only_there(helm_bin: str) -> None:
    docs = _render(helm_bin, "operator.watchNamespaces={team-a,team-b}")
    operator_rbac = [
        d for d in docs if d["kind"] in {"Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding"}
        and d["metadata"]["name"] == "x-ambient-operator"
    ]  # fmt: skip
    assert sorted((d["kind"], d["metadata"]["namespace"]) for d in operator_rbac) == [
        ("Role", "team-a"),
        ("Role", "team-b"),
        ("RoleBinding", "team-a"),
        ("RoleBinding", "team-b"),
    ]
    deployment = next(
        d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"].endswith("operator")
    )
    env = {
        e["name"]: e.get("value")
        for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert env["AMBIENT_NAMESPACES"] == "team-a,team-b"


def _container(docs: list[dict[str, Any]], component: str) -> dict[str, Any]:
    deployment = next(
        d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"].endswith(component)
    )
    container: dict[str, Any] = deployment["spec"]["template"]["spec"]["containers"][0]
    return container


def test_the_ingress_gets_the_store_for_large_payloads(helm_bin: str) -> None:
    docs = _render(
        helm_bin,
        "operator.store.bucket=ops",
        "operator.store.endpointUrl=http://s3.local:9000",
        "operator.store.credentialsSecret=s3-creds",
    )
    ingress, operator = _container(docs, "ingress"), _container(docs, "operator")
    env = {e["name"]: e["value"] for e in ingress["env"]}
    assert env["AMBIENT_STORE_BUCKET"] == "ops"
    assert env["AMBIENT_STORE_ENDPOINT_URL"] == "http://s3.local:9000"
    assert env["AMBIENT_INGRESS_MAX_BODY_BYTES"] == "262144"
    assert env["AMBIENT_INGRESS_MAX_STORED_BODY_BYTES"] == "26214400"
    assert ingress["envFrom"] == operator["envFrom"] == [{"secretRef": {"name": "s3-creds"}}]

    none = {e["name"] for e in _container(_render(helm_bin), "ingress")["env"]}
    assert "AMBIENT_STORE_BUCKET" not in none  # no store: 413 above the in-object limit


def test_two_operator_replicas_elect_a_leader_and_one_runs_without(helm_bin: str) -> None:
    docs = _render(helm_bin)
    deployment = _deployment(docs, "x-ambient-operator")
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["strategy"]["type"] == "RollingUpdate"
    env = {e["name"]: e.get("value") for e in _container(docs, "operator")["env"]}
    assert (env["AMBIENT_LEADER_ELECTION"], env["AMBIENT_LEADER_ELECTION_LEASE"]) == (
        "true",
        "x-ambient-operator",
    )
    role = next(d for d in docs if d["metadata"]["name"] == "x-ambient-operator-leader"
                and d["kind"] == "Role")  # fmt: skip
    named = [r for r in role["rules"] if r.get("resourceNames")]
    # Its own Lease and the shards' (so a change of the shard count hands over), and the
    # shard map: nothing else by name.
    assert named == [
        {
            "apiGroups": ["coordination.k8s.io"],
            "resources": ["leases"],
            "resourceNames": [
                "x-ambient-operator",
                "x-ambient-operator-shard-0",
                "x-ambient-operator-shard-1",
            ],
            "verbs": ["get", "update"],
        },
        {
            "apiGroups": [""],
            "resources": ["configmaps"],
            "resourceNames": ["x-ambient-operator-shards"],
            "verbs": ["get"],
        },
    ]
    pdb = next(d for d in docs if d["kind"] == "PodDisruptionBudget"
               and d["metadata"]["name"] == "x-ambient-operator")  # fmt: skip
    assert pdb["spec"]["minAvailable"] == 1

    single = _render(helm_bin, "operator.replicas=1")
    deployment = _deployment(single, "x-ambient-operator")
    assert deployment["spec"]["strategy"]["type"] == "Recreate"
    env = {e["name"]: e.get("value") for e in _container(single, "operator")["env"]}
    assert env["AMBIENT_LEADER_ELECTION"] == "false"
    # Still shard 0 of the shard map, holding its Lease (a later count change hands over).
    assert (env["AMBIENT_SHARD_MAP"], env["AMBIENT_SHARD_INDEX"]) == (
        "x-ambient-operator-shards",
        "0",
    )
    assert not [
        d
        for d in single
        if d["kind"] == "PodDisruptionBudget" and "operator" in d["metadata"]["name"]
    ]


def _deployment(docs: list[dict[str, Any]], name: str) -> dict[str, Any]:
    return next(d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == name)
