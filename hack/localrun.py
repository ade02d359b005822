"""The parts `make run` starts beside the control plane, each a child process logging to
.run/<name>.log: a local S3-compatible store (moto's server), the admission webhook over
TLS with its ValidatingWebhookConfiguration, the ingress, the operator; and the sample
GitHub delivery it signs and sends."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import ipaddress
import json
import secrets
import shlex
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ambient.runners import registry
from ambient.webhooks.admission.registration import registrations

ROOT = Path(__file__).resolve().parent.parent
BUCKET = "ambient-local"
LOCAL_LABEL = "ambient.ai/local-run"
"""Namespaces `make run` governs with its admission webhook (the example's): the tests'
namespaces on the same control plane are left alone."""
SIGNING_SECRET = "ambient-webhook-signing"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_until(what: str, check: Callable[[], bool], timeout: float, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.25)
    raise RuntimeError(f"{what} did not happen in {timeout:.0f}s; see {log}")


def http_ok(url: str, context: ssl.SSLContext | None = None) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2, context=context) as rsp:
            return bool(rsp.status == 200)
    except (OSError, urllib.error.URLError):
        return False


class Children:
    """The processes started, stopped together (in reverse order) on the way out."""

    def __init__(self, run_dir: Path, env: dict[str, str]) -> None:
        self.run_dir = run_dir
        self.env = env
        self.procs: list[tuple[str, subprocess.Popen[bytes]]] = []

    def start(self, name: str, args: list[str], env: dict[str, str] | None = None) -> Path:
        log = self.run_dir / f"{name}.log"
        with log.open("ab") as out:
            proc = subprocess.Popen(
                args,
                env={**self.env, **(env or {})},
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
            )
        self.procs.append((name, proc))
        return log

    def exited(self) -> str | None:
        """The name of a child that stopped on its own, if any."""
        for name, proc in self.procs:
            if proc.poll() is not None:
                return name
        return None

    def stop(self, say: Callable[[str], None]) -> None:
        for name, proc in reversed(self.procs):
            if proc.poll() is None:
                say(f"stopping the {name}")
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=10)


def start_store(children: Children) -> dict[str, str]:
    """moto's S3 server on a free port, a bucket in it; the env every component uses."""
    port = free_port()
    log = children.start(
        "store", [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
    )
    endpoint = f"http://127.0.0.1:{port}"
    wait_until("the local S3 store to answer", lambda: http_ok(f"{endpoint}/"), 60, log)
    env = {
        "AMBIENT_STORE_BUCKET": BUCKET,
        "AMBIENT_STORE_ENDPOINT_URL": endpoint,
        "AMBIENT_STORE_REGION": "us-east-1",
        # moto takes any credentials; real ones never appear here.
        "AWS_ACCESS_KEY_ID": "local",
        "AWS_SECRET_ACCESS_KEY": "local",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",
    ).create_bucket(Bucket=BUCKET)
    return env


def tls_files(directory: Path) -> tuple[Path, Path, Path]:
    """A CA and a serving certificate for 127.0.0.1 and localhost: the local admission
    webhook's (the API server calls it) and the integration tests' servers'."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ambient-local-admission-ca")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    paths = tuple(directory / f for f in ("ca.pem", "tls.crt", "tls.key"))
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    paths[2].chmod(0o600)
    return paths[0], paths[1], paths[2]


def start_admission(
    children: Children,
    store_env: dict[str, str],
    operator_user: str,
    *,
    mutating_policy: bool = False,
) -> tuple[dict[str, Any], list[str]]:
    """The admission webhook over TLS on a free port; its registration (not yet applied:
    a List, in the order to apply it) for the namespaces labelled LOCAL_LABEL, and the
    kind/name of each object to delete it by: both webhooks, as the chart registers them
    by default (the fast path, webhooks/admission/fastpath.py, is off; with it and
    ``mutating_policy`` the API server would also stamp creators itself)."""
    ca, cert, key = tls_files(children.run_dir / "admission")
    port = free_port()
    log = children.start(
        "admission",
        [sys.executable, "-m", "ambient.webhooks.admission"],
        {
            **store_env,
            "AMBIENT_ADMISSION_CERT_FILE": str(cert),
            "AMBIENT_ADMISSION_KEY_FILE": str(key),
            "AMBIENT_ADMISSION_HOST": "127.0.0.1",
            "AMBIENT_ADMISSION_PORT": str(port),
            "AMBIENT_ADMISSION_OPERATOR_USERNAMES": operator_user,
        },
    )
    context = ssl.create_default_context(cafile=str(ca))
    wait_until(
        "the admission webhook to be ready",
        lambda: http_ok(f"https://127.0.0.1:{port}/readyz", context),
        60,
        log,
    )
    items = registrations(
        ca.read_bytes(),
        registry.load(),
        url=f"https://127.0.0.1:{port}/validate",
        name="ambient-local-run",
        match_labels={LOCAL_LABEL: "true"},
        operator_usernames=[operator_user],
        # As the chart's default (admission.fastPath.enabled): the fast path measured
        # costlier than the webhook call on kube-apiserver 1.35 (docs/benchmarks.md).
        fast_path=False,
        mutating_policy=mutating_policy,
    )
    names = [f"{item['kind'].lower()}/{item['metadata']['name']}" for item in items]
    return {"apiVersion": "v1", "kind": "List", "items": items}, names


def start_ingress(children: Children, store_env: dict[str, str]) -> str:
    """The ingress on a free port (loopback only); its base URL."""
    port = free_port()
    log = children.start(
        "ingress",
        [sys.executable, "-m", "ambient.webhooks.ingress"],
        {**store_env, "AMBIENT_INGRESS_HOST": "127.0.0.1", "AMBIENT_INGRESS_PORT": str(port)},
    )
    url = f"http://127.0.0.1:{port}"
    wait_until("the ingress to be ready", lambda: http_ok(f"{url}/readyz"), 60, log)
    return url


def new_key() -> tuple[str, str]:
    """A GitHub key (shown once) and its SHA-256, which is all the policy keeps."""
    key = "amb_github_" + secrets.token_urlsafe(24)
    return key, hashlib.sha256(key.encode()).hexdigest()


SAMPLE = {
    "action": "opened",
    "number": 7,
    "pull_request": {
        "number": 7,
        "title": "Fix the flaky retry test",
        "html_url": "https://github.com/example/app/pull/7",
        "author_association": "MEMBER",
        "user": {"login": "octocat"},
        "head": {"ref": "fix-flaky", "sha": "0" * 40, "repo": {"full_name": "example/app"}},
        "base": {"ref": "main", "repo": {"full_name": "example/app"}},
    },
    "repository": {
        "full_name": "example/app",
        "default_branch": "main",
        "clone_url": "https://github.com/example/app.git",
    },
    "sender": {"login": "octocat"},
}


def signature(secret: str, body: bytes) -> dict[str, str]:
    """GitHub's signature header over ``body``."""
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {"X-Hub-Signature-256": f"sha256={digest}"}


def sample_delivery(run_dir: Path, url: str, key: str, secret: str) -> tuple[str, dict[str, str]]:
    """Write a signed sample `pull_request.opened` to .run/ and return the curl command
    that sends it, and its headers (to send it from here too)."""
    body = json.dumps({**SAMPLE, "ambient_sample": uuid.uuid4().hex}, indent=2).encode()
    path = run_dir / "sample-pull-request.json"
    path.write_bytes(body)
    headers = {
        "Content-Type": "application/json",
        "X-GitHub-Event": "pull_request",
        "X-GitHub-Delivery": str(uuid.uuid4()),
        **signature(secret, body),
    }
    parts = ["curl", "-sS", "-X", "POST", f"{url}/webhooks/github/{key}"]
    for name, value in headers.items():
        parts += ["-H", f"{name}: {value}"]
    parts += ["--data-binary", f"@{path}"]
    return " ".join(shlex.quote(p) for p in parts), headers


def send(url: str, key: str, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(
        f"{url}/webhooks/github/{key}", data=body, headers=headers, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as rsp:
            return rsp.status, json.loads(rsp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")
