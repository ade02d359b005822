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


@dataclass(frozen=True)
class Leaf:
    """A certificate signed by the cluster CA: `<name>.crt` and `<name>.key`."""

    name: str
    subject: str
    extensions: tuple[str, ...]


@dataclass(frozen=True)
class Plan:
    """What is missing from the pki directory, in the order it must be made."""

    new_ca: bool
    leaves: tuple[Leaf, ...]
    service_account_keys: bool

    @property
    def empty(self) -> bool:
        return not (self.new_ca or self.leaves or self.service_account_keys)


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
    return (serving, *clients)


def plan(existing: Collection[str]) -> Plan:
    """What to make, given the file names already in the pki directory.

    A missing CA half means a new CA, which invalidates every old cert and key (the
    service-account key included, as it is a `.key` too); the rest is made only if absent.
    """
    new_ca = "ca.crt" not in existing or "ca.key" not in existing
    have = {f for f in existing if not new_ca or not f.endswith((".crt", ".key"))}
    return Plan(
        new_ca=new_ca,
        leaves=tuple(leaf for leaf in leaves() if f"{leaf.name}.crt" not in have),
        service_account_keys="sa.key" not in have or "sa.pub" not in have,
    )


def ca_args(pki: Path) -> list[str]:
    """A throwaway self-signed CA, made once per state dir, that signs every cert here."""
    return [
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-sha256", "-days", DAYS,
        "-keyout", str(pki / "ca.key"), "-out", str(pki / "ca.crt"),
        "-subj", f"/CN={CLUSTER_NAME}-ca",
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
    """The CA signs the request with the leaf's extensions; `serial` is random per cert."""
    return [
        "x509", "-req", "-in", str(csr_path(pki, leaf)), "-sha256", "-days", DAYS,
        "-CA", str(pki / "ca.crt"), "-CAkey", str(pki / "ca.key"),
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
