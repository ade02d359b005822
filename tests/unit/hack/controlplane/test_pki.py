"""pki: which certificates to make, and the openssl arguments for each."""

from __future__ import annotations

import base64
from pathlib import Path

import yaml
from controlplane.pki import (
    CLIENT_CERTS,
    admission_config_text,
    ca_args,
    extfile_text,
    kubeconfig_text,
    leaves,
    plan,
    request_args,
    service_account_key_args,
    service_account_pub_args,
    sign_args,
    webhook_client_kubeconfig_text,
)

PKI = Path("/s/pki")
EVERYTHING = {
    "ca.crt",
    "ca.key",
    "sa.key",
    "sa.pub",
    "webhook-client-ca.crt",
    "webhook-client-ca.key",
} | {f"{leaf.name}.{ext}" for leaf in leaves() for ext in ("crt", "key")}


def test_an_empty_directory_needs_everything() -> None:
    todo = plan(set())
    assert todo.new_ca
    assert [leaf.name for leaf in todo.leaves] == ["apiserver", *CLIENT_CERTS, "webhook-client"]
    assert todo.service_account_keys and todo.new_webhook_client_ca


def test_a_complete_directory_needs_nothing() -> None:
    assert plan(EVERYTHING).empty
    assert plan(EVERYTHING | {"kubeconfig", "admin.kubeconfig"}).empty


def test_only_missing_leaves_are_made() -> None:
    todo = plan(EVERYTHING - {"kwok.crt", "sa.pub"})
    assert not todo.new_ca
    assert [leaf.name for leaf in todo.leaves] == ["kwok"]
    assert todo.service_account_keys


def test_a_missing_ca_half_remakes_every_cert_and_key() -> None:
    todo = plan(EVERYTHING - {"ca.key"})
    assert todo.new_ca
    assert len(todo.leaves) == 1 + len(CLIENT_CERTS) + 1
    assert todo.new_webhook_client_ca
    # sa.key is a .key, so it goes with the old CA (as it always has).
    assert todo.service_account_keys


def test_clients_are_clientauth_and_the_apiserver_serves_its_names() -> None:
    by_name = {leaf.name: leaf for leaf in leaves()}
    assert by_name["admin"].subject == "/O=system:masters/CN=kubernetes-admin"
    assert by_name["kube-scheduler"].subject == "/CN=system:kube-scheduler"
    assert "extendedKeyUsage=clientAuth" in by_name["kwok"].extensions
    serving = by_name["apiserver"].extensions
    assert "extendedKeyUsage=serverAuth" in serving
    sans = next(e for e in serving if e.startswith("subjectAltName="))
    for name in ["DNS:localhost", "DNS:kubernetes.default.svc", "IP:127.0.0.1", "IP:10.96.0.1"]:
        assert name in sans.split("=", 1)[1].split(",")
    assert extfile_text(by_name["apiserver"]) == "\n".join(serving) + "\n"


def test_the_ca_is_self_signed_and_may_sign_certs() -> None:
    args = ca_args(PKI)
    assert args[:2] == ["req", "-x509"]
    assert args[args.index("-keyout") + 1] == "/s/pki/ca.key"
    assert args[args.index("-out") + 1] == "/s/pki/ca.crt"
    assert args[args.index("-subj") + 1] == "/CN=ambient-local-ca"
    assert "basicConstraints=critical,CA:TRUE" in args


def test_a_leaf_is_requested_then_signed_by_the_ca() -> None:
    admin = next(leaf for leaf in leaves() if leaf.name == "admin")
    req = request_args(PKI, admin)
    assert req[:2] == ["req", "-new"]
    assert req[req.index("-keyout") + 1] == "/s/pki/admin.key"
    assert req[req.index("-out") + 1] == "/s/pki/admin.csr"
    assert req[req.index("-subj") + 1] == admin.subject
    sign = sign_args(PKI, admin, 12345)
    assert sign[:2] == ["x509", "-req"]
    assert sign[sign.index("-in") + 1] == "/s/pki/admin.csr"
    assert sign[sign.index("-CA") + 1] == "/s/pki/ca.crt"
    assert sign[sign.index("-CAkey") + 1] == "/s/pki/ca.key"
    assert sign[sign.index("-set_serial") + 1] == "12345"
    assert sign[sign.index("-extfile") + 1] == "/s/pki/admin.ext"
    assert sign[sign.index("-out") + 1] == "/s/pki/admin.crt"


def test_the_service_account_key_pair() -> None:
    assert service_account_key_args(PKI)[-2:] == ["-out", "/s/pki/sa.key"]
    assert service_account_pub_args(PKI) == [
        "pkey", "-in", "/s/pki/sa.key", "-pubout", "-out", "/s/pki/sa.pub",
    ]  # fmt: skip


def test_the_kubeconfig_inlines_the_certs_for_its_user() -> None:
    text = kubeconfig_text("https://127.0.0.1:26443", "kwok", b"CA", b"CERT", b"KEY")
    config = yaml.safe_load(text)
    cluster = config["clusters"][0]["cluster"]
    assert cluster["server"] == "https://127.0.0.1:26443"
    assert base64.b64decode(cluster["certificate-authority-data"]) == b"CA"
    user = config["users"][0]
    assert user["name"] == "kwok"
    assert base64.b64decode(user["user"]["client-certificate-data"]) == b"CERT"
    assert base64.b64decode(user["user"]["client-key-data"]) == b"KEY"
    assert config["current-context"] == "ambient-local"
    assert config["contexts"][0]["context"] == {
        "cluster": "ambient-local",
        "user": "kwok",
        "namespace": "default",
    }


def test_the_webhook_client_has_a_ca_of_its_own() -> None:
    """Signed by webhook-client-ca, so a webhook trusting that CA admits the API server's
    certificate and no cluster user's; a new webhook CA remakes only that leaf."""
    leaf = next(leaf for leaf in leaves() if leaf.name == "webhook-client")
    assert leaf.ca == "webhook-client-ca"
    args = sign_args(PKI, leaf, 7)
    assert args[args.index("-CA") + 1] == "/s/pki/webhook-client-ca.crt"
    assert args[args.index("-CAkey") + 1] == "/s/pki/webhook-client-ca.key"
    assert ca_args(PKI, "webhook-client-ca")[ca_args(PKI).index("-subj") + 1] == (
        "/CN=ambient-local-webhook-client-ca"
    )
    todo = plan(EVERYTHING - {"webhook-client-ca.key"})
    assert not todo.new_ca and todo.new_webhook_client_ca
    assert [leaf.name for leaf in todo.leaves] == ["webhook-client"]


def test_the_admission_config_points_both_webhook_plugins_at_the_client_kubeconfig() -> None:
    config = yaml.safe_load(admission_config_text(PKI / "webhook-client.kubeconfig"))
    assert config["kind"] == "AdmissionConfiguration"
    plugins = {p["name"]: p["configuration"] for p in config["plugins"]}
    assert set(plugins) == {"ValidatingAdmissionWebhook", "MutatingAdmissionWebhook"}
    for conf in plugins.values():
        assert conf["kubeConfigFile"] == "/s/pki/webhook-client.kubeconfig"
    users = yaml.safe_load(
        webhook_client_kubeconfig_text(PKI / "webhook-client.crt", PKI / "webhook-client.key")
    )["users"]
    assert users == [
        {"name": "*", "user": {"client-certificate": "/s/pki/webhook-client.crt",
                               "client-key": "/s/pki/webhook-client.key"}}
    ]  # fmt: skip
