"""Which keys and certificates the cluster needs, and the openssl arguments that make them.

Pure: this module decides; `certs` runs openssl and writes the files. The project keeps
no crypto dependency just for throwaway test certificates, so the openssl CLI does it.
"""

from __future__ import annotations

import base64
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

from .settings import CLUSTER_NAME, SERVICE_IP

DAYS = "3650"

# name -> subject. The O=system:masters identities bypass RBAC; the others get the
# bootstrap RBAC roles Kubernetes grants those user names.
CLIENT_CERTS = {
    "admin": "/O=system:masters/CN=kubernetes-admin",
    "kube-controller-manager": "/CN=system:kube-controller-manager",
    "kube-scheduler": "/CN=system:kube-scheduler",
    "kwok": "/O=system:masters/CN=kwok",
}

# The apiserver is reached as 127.0.0.1/localhost here and by its service name in-cluster.
APISERVER_NAMES = (
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
    "localhost",
)


# A CA of its own for the one client certificate the API server presents to admission
# webhooks: a webhook trusting only this CA is called by the API server alone, not by any
# holder of a cluster client certificate.
WEBHOOK_CLIENT_CA = "webhook-client-ca"
WEBHOOK_CLIENT = "webhook-client"


@dataclass(frozen=True)
class Leaf:
    """A certificate signed by a CA (the cluster's unless said): `<name>.crt`, `<name>.key`."""

    name: str
    subject: str
    extensions: tuple[str, ...]
    ca: str = "ca"


@dataclass(frozen=True)
class Plan:
    """What is missing from the pki directory, in the order it must be made."""

    new_ca: bool
    leaves: tuple[Leaf, ...]
    service_account_keys: bool
    new_webhook_client_ca: bool = False

    @property
    def empty(self) -> bool:
        return not (
            self.new_ca or self.leaves or self.service_account_keys or self.new_webhook_client_ca
        )


def client_extensions() -> tuple[str, ...]:
    return (
        "basicConstraints=critical,CA:FALSE",
        "keyUsage=critical,digitalSignature,keyEncipherment",
        "extendedKeyUsage=clientAuth",
    )


def serving_extensions() -> tuple[str, ...]:
    sans = [f"DNS:{n}" for n in APISERVER_NAMES] + ["IP:127.0.0.1", f"IP:{SERVICE_IP}"]
    return (
        "basicConstraints=critical,CA:FALSE",
        "keyUsage=critical,digitalSignature,keyEncipherment",
        "extendedKeyUsage=serverAuth",
        "subjectAltName=" + ",".join(sans),
    )


def leaves() -> tuple[Leaf, ...]:
    """Every leaf the cluster uses: the apiserver's serving cert, then one per client."""
    serving = Leaf("apiserver", "/CN=kube-apiserver", serving_extensions())
    clients = (Leaf(n, s, client_extensions()) for n, s in CLIENT_CERTS.items())
    webhook_client = Leaf(
        WEBHOOK_CLIENT,
        "/CN=system:kube-apiserver-webhook-client",
        client_extensions(),
        WEBHOOK_CLIENT_CA,
    )
    return (serving, *clients, webhook_client)


def plan(existing: Collection[str]) -> Plan:
    """What to make, given the file names already in the pki directory.

    A missing CA half means a new CA, which invalidates every old cert and key (the
    service-account key included, as it is a `.key` too); the rest is made only if absent.
    """
    new_ca = "ca.crt" not in existing or "ca.key" not in existing
    have = {f for f in existing if not new_ca or not f.endswith((".crt", ".key"))}
    new_webhook_ca = (
        f"{WEBHOOK_CLIENT_CA}.crt" not in have or f"{WEBHOOK_CLIENT_CA}.key" not in have
    )
    return Plan(
        new_ca=new_ca,
        leaves=tuple(
            leaf
            for leaf in leaves()
            if f"{leaf.name}.crt" not in have or (new_webhook_ca and leaf.ca == WEBHOOK_CLIENT_CA)
        ),
        service_account_keys="sa.key" not in have or "sa.pub" not in have,
        new_webhook_client_ca=new_webhook_ca,
    )


def ca_args(pki: Path, name: str = "ca") -> list[str]:
    """A throwaway self-signed CA, made once per state dir: the cluster's (``ca``) signs
    every cert here but the webhook client's, which ``WEBHOOK_CLIENT_CA`` signs."""
    return [
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-sha256", "-days", DAYS,
        "-keyout", str(pki / f"{name}.key"), "-out", str(pki / f"{name}.crt"),
        "-subj", f"/CN={CLUSTER_NAME}-{name}",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign,digitalSignature",
    ]  # fmt: skip


def csr_path(pki: Path, leaf: Leaf) -> Path:
    return pki / f"{leaf.name}.csr"


def extfile_path(pki: Path, leaf: Leaf) -> Path:
    return pki / f"{leaf.name}.ext"


def extfile_text(leaf: Leaf) -> str:
    """The X.509v3 extensions file `openssl x509 -extfile` reads."""
    return "\n".join(leaf.extensions) + "\n"


def request_args(pki: Path, leaf: Leaf) -> list[str]:
    """A new key and a signing request for `leaf`."""
    return [
        "req", "-new", "-newkey", "rsa:2048", "-nodes", "-sha256",
        "-keyout", str(pki / f"{leaf.name}.key"), "-out", str(csr_path(pki, leaf)),
        "-subj", leaf.subject,
    ]  # fmt: skip


def sign_args(pki: Path, leaf: Leaf, serial: int) -> list[str]:
    """The leaf's CA signs the request with its extensions; `serial` is random per cert."""
    return [
        "x509", "-req", "-in", str(csr_path(pki, leaf)), "-sha256", "-days", DAYS,
        "-CA", str(pki / f"{leaf.ca}.crt"), "-CAkey", str(pki / f"{leaf.ca}.key"),
        "-set_serial", str(serial),
        "-extfile", str(extfile_path(pki, leaf)), "-out", str(pki / f"{leaf.name}.crt"),
    ]  # fmt: skip


def service_account_key_args(pki: Path) -> list[str]:
    """The key the apiserver signs service-account tokens with."""
    return ["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048",
            "-out", str(pki / "sa.key")]  # fmt: skip


def service_account_pub_args(pki: Path) -> list[str]:
    """Its public half, which the apiserver verifies tokens with."""
    return ["pkey", "-in", str(pki / "sa.key"), "-pubout", "-out", str(pki / "sa.pub")]


def kubeconfig_text(server: str, user: str, ca: bytes, cert: bytes, key: bytes) -> str:
    """A kubeconfig with the certs inlined, so it still works if copied elsewhere."""

    def b64(data: bytes) -> str:
        return base64.b64encode(data).decode()

    return f"""apiVersion: v1
kind: Config
clusters:
- name: {CLUSTER_NAME}
  cluster:
    server: {server}
    certificate-authority-data: {b64(ca)}
users:
- name: {user}
  user:
    client-certificate-data: {b64(cert)}
    client-key-data: {b64(key)}
contexts:
- name: {CLUSTER_NAME}
  context:
    cluster: {CLUSTER_NAME}
    user: {user}
    namespace: default
current-context: {CLUSTER_NAME}
"""


def admission_config_text(kubeconfig: Path) -> str:
    """The API server's AdmissionConfiguration: both webhook plugins read the kubeconfig
    that gives the client certificate to present to webhooks."""
    plugins = "".join(
        f"""- name: {plugin}
  configuration:
    apiVersion: apiserver.config.k8s.io/v1
    kind: WebhookAdmissionConfiguration
    kubeConfigFile: {kubeconfig}
"""
        for plugin in ("ValidatingAdmissionWebhook", "MutatingAdmissionWebhook")
    )
    return f"""apiVersion: apiserver.config.k8s.io/v1
kind: AdmissionConfiguration
plugins:
{plugins}"""


def webhook_client_kubeconfig_text(cert: Path, key: Path) -> str:
    """Credentials per webhook host; ``*`` is every webhook (the API server presents the
    certificate; a webhook that asks for none ignores it)."""
    return f"""apiVersion: v1
kind: Config
users:
- name: "*"
  user:
    client-certificate: {cert}
    client-key: {key}
"""
