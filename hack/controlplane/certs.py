"""Make the keys, certificates and kubeconfigs on disk by running openssl (talks).

`pki` decides what is missing and the arguments; this module only carries them out.
"""

from __future__ import annotations

import os
import secrets
import subprocess
from pathlib import Path

from . import pki
from .errors import ClusterError
from .output import step
from .settings import Settings


def openssl(args: list[str]) -> None:
    """Run the openssl CLI; a failure carries openssl's own explanation."""
    try:
        result = subprocess.run(["openssl", *args], capture_output=True, text=True, check=False)
    except FileNotFoundError:
        raise ClusterError(
            "openssl is not on PATH; install it (the package is usually called openssl)"
        ) from None
    if result.returncode != 0:
        raise ClusterError(f"openssl {args[0]} failed:\n{result.stderr.strip()}")


def make_leaf(directory: Path, leaf: pki.Leaf) -> None:
    """Issue `<name>.crt`/`<name>.key` from the CA; the request and extfile are scratch."""
    csr, ext = pki.csr_path(directory, leaf), pki.extfile_path(directory, leaf)
    ext.write_text(pki.extfile_text(leaf))
    try:
        openssl(pki.request_args(directory, leaf))
        openssl(pki.sign_args(directory, leaf, secrets.randbits(120)))
    finally:
        csr.unlink(missing_ok=True)
        ext.unlink(missing_ok=True)


def ensure_pki(settings: Settings) -> None:
    """Create whatever keys and certs are missing; a new CA invalidates every old leaf."""
    directory = settings.pki
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o700)
    todo = pki.plan({p.name for p in directory.iterdir()})
    if todo.new_ca:
        step("creating a throwaway CA")
        for old in list(directory.glob("*.crt")) + list(directory.glob("*.key")):
            old.unlink()
        openssl(pki.ca_args(directory))
    if todo.new_webhook_client_ca:
        openssl(pki.ca_args(directory, pki.WEBHOOK_CLIENT_CA))
    for leaf in todo.leaves:
        make_leaf(directory, leaf)
    if todo.service_account_keys:
        step("creating the service-account signing key pair")
        openssl(pki.service_account_key_args(directory))
        openssl(pki.service_account_pub_args(directory))
    for key in directory.glob("*.key"):
        key.chmod(0o600)


def write_private(path: Path, text: str) -> None:
    """Write a file holding key material, readable by the owner only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)


def write_kubeconfigs(settings: Settings) -> None:
    """One kubeconfig per client identity; rewritten each start in case the port changed."""
    directory = settings.pki
    ca = (directory / "ca.crt").read_bytes()
    for user in pki.CLIENT_CERTS:
        path = settings.kubeconfig if user == "admin" else settings.component_kubeconfig(user)
        cert = (directory / f"{user}.crt").read_bytes()
        key = (directory / f"{user}.key").read_bytes()
        write_private(path, pki.kubeconfig_text(settings.apiserver_url, user, ca, cert, key))


def write_admission_config(settings: Settings) -> None:
    """The AdmissionConfiguration the API server starts with: it presents the webhook
    client certificate to every admission webhook (which may require it)."""
    directory = settings.pki
    kubeconfig = directory / "webhook-client.kubeconfig"
    write_private(
        kubeconfig,
        pki.webhook_client_kubeconfig_text(
            directory / f"{pki.WEBHOOK_CLIENT}.crt", directory / f"{pki.WEBHOOK_CLIENT}.key"
        ),
    )
    write_private(settings.admission_config, pki.admission_config_text(kubeconfig))
