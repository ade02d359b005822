"""Shared helpers for integration tests: a real S3-compatible server (moto's), throwaway
TLS material, free ports, the admission webhook as its real process."""

from __future__ import annotations

import datetime as dt
import socket
import ssl
import subprocess
import sys
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from localrun import tls_files
from moto.server import ThreadedMotoServer

from ambient.common.store.s3 import S3Store


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """moto's S3 server on a free loopback port, for the whole run."""
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def s3_store(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> S3Store:
    """A fresh bucket per test, reached through the production S3Store."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    bucket = f"test-{free_port()}"
    boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1").create_bucket(
        Bucket=bucket
    )
    return S3Store(bucket, endpoint_url=s3_endpoint)


def client_certificate(
    ca_cert: Path, ca_key: Path, user: str, groups: list[str]
) -> tuple[bytes, bytes]:
    """A client certificate the API server authenticates as ``user`` in ``groups``."""
    issuer = x509.load_pem_x509_certificate(ca_cert.read_bytes())
    signer = serialization.load_pem_private_key(ca_key.read_bytes(), password=None)
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    subject = x509.Name(
        [x509.NameAttribute(NameOID.ORGANIZATION_NAME, g) for g in groups]
        + [x509.NameAttribute(NameOID.COMMON_NAME, user)]
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
        )
        .sign(signer, hashes.SHA256())  # type: ignore[arg-type]
    )
    return (
        cert.public_bytes(serialization.Encoding.PEM),
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )


def cluster_pki(cluster: Any) -> Path:
    """The local control plane's PKI (hack/controlplane writes it beside the kubeconfig)."""
    return Path(cluster.kubeconfig).parent / "pki"


@dataclass(frozen=True)
class AdmissionProcess:
    """A running admission webhook (python -m ambient.webhooks.admission)."""

    proc: subprocess.Popen[bytes]
    port: int
    ca: Path
    """The CA its serving certificate is signed by (what the API server is told to trust)."""
    tls: ssl.SSLContext
    """A TLS client presenting the certificate the API server presents to webhooks
    (hack/controlplane's AdmissionConfiguration): the only client it lets through."""
    log: Path

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def get(self, path: str) -> str:
        with urllib.request.urlopen(f"{self.url}{path}", context=self.tls, timeout=5) as rsp:
            return str(rsp.read().decode())


@contextmanager
def admission_webhook(
    cluster: Any, tmp: Path, env: Mapping[str, str] | None = None
) -> Iterator[AdmissionProcess]:
    """Start the admission webhook with fresh TLS material, requiring the API server's
    client certificate; wait until it is ready; stop it on the way out."""
    ca, cert, key = tls_files(tmp)
    port = free_port()
    pki = cluster_pki(cluster)
    log = tmp / "webhook.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "ambient.webhooks.admission"],
        env={
            **cluster.env,
            "AMBIENT_ADMISSION_CERT_FILE": str(cert),
            "AMBIENT_ADMISSION_KEY_FILE": str(key),
            "AMBIENT_ADMISSION_HOST": "127.0.0.1",
            "AMBIENT_ADMISSION_PORT": str(port),
            "AMBIENT_ADMISSION_CLIENT_CA_FILE": str(pki / "webhook-client-ca.crt"),
            **(env or {}),
        },
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    context = ssl.create_default_context(cafile=str(ca))
    context.load_cert_chain(pki / "webhook-client.crt", pki / "webhook-client.key")
    hook = AdmissionProcess(proc, port, ca, context, log)

    def ready() -> bool:
        try:
            return hook.get("/readyz") == "ok"
        except OSError:
            return False

    try:
        cluster.wait_for("the admission webhook to be ready", ready, timeout=30)
        yield hook
    finally:
        proc.terminate()
        proc.wait(timeout=20)
