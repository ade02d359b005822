"""Where the API clients connect and how they log in: one loader (common/kube/config.py),
in-cluster or the kubeconfig read when called, whatever client is built over it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from kubernetes.config import incluster_config

from ambient.common.kube import config
from ambient.common.kube.aio import AsyncKube
from ambient.common.kube.client import Kube


def _kubeconfig(
    tmp_path: Path,
    user: dict[str, object],
    cluster: dict[str, object],
    server: str = "https://api:6443",
    name: str = "config",
) -> Path:
    path = tmp_path / name
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [
                    {"name": "other", "cluster": {"server": "https://wrong:1"}},
                    {"name": "c", "cluster": {"server": server, **cluster}},
                ],
                "users": [{"name": "u", "user": user}],
                "contexts": [{"name": "ctx", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "ctx",
            }
        )
    )
    return path


@pytest.fixture
def outside_a_cluster(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.delenv("KUBERNETES_SERVICE_PORT", raising=False)


def test_the_current_context_and_its_token(tmp_path: Path) -> None:
    path = _kubeconfig(tmp_path, {"token": "t0k"}, {"insecure-skip-tls-verify": True})
    cfg = config.configuration(str(path))
    assert cfg.host == "https://api:6443"
    assert config.authorization(cfg) == "Bearer t0k"
    # both flavours are built over it
    api = Kube(connections=1, kubeconfig=str(path))
    assert api._server == "https://api:6443"
    assert api._headers()["Authorization"] == "Bearer t0k"
    assert AsyncKube(kubeconfig=str(path))._headers("application/json")["Authorization"] == (
        "Bearer t0k"
    )


def test_an_exec_plugin_login_works_as_with_kubectl(tmp_path: Path) -> None:
    # EKS and GKE log in through exec plugins; the loader runs the plugin and uses its token.
    plugin = tmp_path / "plugin.py"
    credential = {
        "apiVersion": "client.authentication.k8s.io/v1",
        "kind": "ExecCredential",
        "status": {"token": "from-the-plugin"},
    }
    plugin.write_text(f"print({json.dumps(json.dumps(credential))})\n")
    user = {
        "exec": {
            "apiVersion": "client.authentication.k8s.io/v1",
            "command": sys.executable,
            "args": [str(plugin)],
            "interactiveMode": "Never",
        }
    }
    path = _kubeconfig(tmp_path, user, {"insecure-skip-tls-verify": True})
    assert config.authorization(config.configuration(str(path))) == "Bearer from-the-plugin"
    api = Kube(connections=1, kubeconfig=str(path))
    assert api._headers()["Authorization"] == "Bearer from-the-plugin"


def test_the_kubeconfig_variable_is_read_at_each_call_not_at_import(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, outside_a_cluster: None
) -> None:
    one = _kubeconfig(tmp_path, {"token": "a"}, {}, server="https://one:6443", name="one")
    two = _kubeconfig(tmp_path, {"token": "b"}, {}, server="https://two:6443", name="two")
    monkeypatch.setenv("KUBECONFIG", str(one))
    assert config.configuration().host == "https://one:6443"
    monkeypatch.setenv("KUBECONFIG", str(two))
    assert config.configuration().host == "https://two:6443"
    assert Kube(connections=1)._server == "https://two:6443"


def test_importing_the_clients_and_their_users_reads_no_configuration(tmp_path: Path) -> None:
    # Nothing to log in with: importing must still work (the loaders run when called).
    env = {k: v for k, v in os.environ.items() if not k.startswith("KUBERNETES_SERVICE")} | {
        "KUBECONFIG": str(tmp_path / "missing"),
        "HOME": str(tmp_path),
    }
    modules = [
        "ambient.common.kube.client",
        "ambient.common.kube.aio",
        "ambient.webhooks.ingress.sessions_api",
        "ambient.webhooks.ingress.__main__",
        "ambient.webhooks.admission.app",
        "ambient.webhooks.policy_watch",
        "ambient.webhooks.cli.keys",
        "ambient.webhooks.cli.deliveries",
    ]
    code = f"import importlib\nfor m in {modules!r}: importlib.import_module(m)"
    subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=120)


def test_in_a_cluster_the_service_account_is_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    token, ca = tmp_path / "token", tmp_path / "ca.crt"
    token.write_text("sa-token\n")
    ca.write_text("not read until a TLS connection is made\n")
    monkeypatch.setattr(incluster_config, "SERVICE_TOKEN_FILENAME", str(token))
    monkeypatch.setattr(incluster_config, "SERVICE_CERT_FILENAME", str(ca))
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
    # A kubeconfig in the environment does not win over the pod's own identity...
    monkeypatch.setenv("KUBECONFIG", str(_kubeconfig(tmp_path, {"token": "t"}, {})))
    cfg = config.configuration()
    assert cfg.host == "https://10.0.0.1:443"
    assert cfg.ssl_ca_cert == str(ca)
    # (the in-cluster loader writes the scheme in lower case; the API server accepts both)
    assert config.authorization(cfg) == "bearer sa-token"
    # ...but one given explicitly does.
    path = _kubeconfig(tmp_path, {"token": "t"}, {}, name="explicit")
    assert config.configuration(str(path)).host == "https://api:6443"


def test_a_missing_context_is_an_error_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "config"
    path.write_text(yaml.safe_dump({"current-context": "gone", "contexts": []}))
    with pytest.raises(Exception, match="gone"):
        config.configuration(str(path))


def test_plain_http_has_no_tls_context(tmp_path: Path) -> None:
    cfg = config.configuration(str(_kubeconfig(tmp_path, {"token": "t"}, {})))
    cfg.host = "http://127.0.0.1:8080"
    assert config.ssl_context(cfg) is None


def test_a_client_certificate_login_sends_no_authorization_header() -> None:
    assert config.authorization(config.Configuration()) is None
