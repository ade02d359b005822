"""Where the API clients connect and how they log in: one loader (common/kube/config.py),
in-cluster or the kubeconfig read when called, whatever client is built over it."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

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
    account = tmp_path / "serviceaccount"
    account.mkdir()
    (account / "token").write_text("sa-token\n")
    (account / "ca.crt").write_text("not read until a TLS connection is made\n")
    (account / "namespace").write_text("ambient-system")
    monkeypatch.setattr(config, "SERVICE_ACCOUNT", account)
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
    # A kubeconfig in the environment does not win over the pod's own identity...
    monkeypatch.setenv("KUBECONFIG", str(_kubeconfig(tmp_path, {"token": "t"}, {})))
    cfg = config.configuration()
    assert cfg.host == "https://10.0.0.1:443"
    assert cfg.ssl_ca_cert == str(account / "ca.crt")
    assert cfg.default_namespace == "ambient-system"
    assert config.authorization(cfg) == "Bearer sa-token"
    # ...but one given explicitly does.
    path = _kubeconfig(tmp_path, {"token": "t"}, {}, name="explicit")
    assert config.configuration(str(path)).host == "https://api:6443"
    # A rotated token is read again once the last read is older than a minute.
    (account / "token").write_text("rotated")
    assert config.authorization(cfg) == "Bearer sa-token"
    monkeypatch.setattr(config, "TOKEN_REREAD_SECONDS", 0.0)
    assert config.authorization(cfg) == "Bearer rotated"
    # An IPv6 service address is bracketed.
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "fd00::1")
    assert config.configuration().host == "https://[fd00::1]:443"


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


def test_embedded_certificates_are_written_to_private_files(tmp_path: Path) -> None:
    pem = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
    encoded = base64.b64encode(pem).decode()
    user = {"client-certificate-data": encoded, "client-key-data": encoded}
    cfg = config.configuration(
        str(_kubeconfig(tmp_path, user, {"certificate-authority-data": encoded}))
    )
    for path in (cfg.ssl_ca_cert, cfg.cert_file, cfg.key_file):
        assert path is not None
        assert Path(path).read_bytes() == pem
        assert Path(path).stat().st_mode & 0o077 == 0
    assert config.authorization(cfg) is None  # a certificate login sends no header


def test_relative_paths_are_relative_to_the_kubeconfig(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("from-a-file\n")
    user = {"tokenFile": "token", "client-certificate": "c.crt", "client-key": "c.key"}
    cfg = config.configuration(
        str(_kubeconfig(tmp_path, user, {"certificate-authority": "ca.crt"}))
    )
    assert (cfg.ssl_ca_cert, cfg.cert_file) == (str(tmp_path / "ca.crt"), str(tmp_path / "c.crt"))
    assert config.authorization(cfg) == "Bearer from-a-file"


def test_merged_kubeconfigs_first_one_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, outside_a_cluster: None
) -> None:
    one = _kubeconfig(tmp_path, {"token": "a"}, {}, server="https://one:6443", name="one")
    two = tmp_path / "two"
    two.write_text(
        yaml.safe_dump(
            {
                "current-context": "other",
                "contexts": [{"name": "other", "context": {"cluster": "c", "user": "u"}}],
                "clusters": [{"name": "c", "cluster": {"server": "https://two:6443"}}],
            }
        )
    )
    missing = tmp_path / "missing"
    monkeypatch.setenv("KUBECONFIG", os.pathsep.join([str(missing), str(one), str(two)]))
    assert config.configuration().host == "https://one:6443"
    assert config.configuration(context="other").host == "https://one:6443"  # cluster c: one's
    monkeypatch.setenv("KUBECONFIG", str(missing))
    with pytest.raises(config.ConfigError, match="no kubeconfig"):
        config.configuration()


def test_basic_auth_and_a_legacy_auth_providers_token(tmp_path: Path) -> None:
    basic = config.configuration(
        str(_kubeconfig(tmp_path, {"username": "u", "password": "p"}, {}, name="b"))
    )
    assert config.authorization(basic) == "Basic " + base64.b64encode(b"u:p").decode()
    oidc = {"auth-provider": {"name": "oidc", "config": {"id-token": "idt"}}}
    assert config.authorization(config.configuration(str(_kubeconfig(tmp_path, oidc, {})))) == (
        "Bearer idt"
    )


def test_an_exec_plugins_expired_token_is_fetched_again(tmp_path: Path) -> None:
    counter = tmp_path / "runs"
    plugin = tmp_path / "plugin.py"
    plugin.write_text(
        "import json, pathlib\n"
        f"p = pathlib.Path({str(counter)!r})\n"
        "n = int(p.read_text()) + 1 if p.exists() else 1\n"
        "p.write_text(str(n))\n"
        "print(json.dumps({'status': {'token': f'tok{n}',"
        " 'expirationTimestamp': '2000-01-01T00:00:00Z'}}))\n"
    )
    user = {"exec": {"command": sys.executable, "args": [str(plugin)]}}
    cfg = config.configuration(str(_kubeconfig(tmp_path, user, {})))
    # expired already: each use runs the plugin again
    assert config.authorization(cfg) == "Bearer tok2"
    assert config.authorization(cfg) == "Bearer tok3"
    fields = config.connection_fields(cfg)
    assert (fields["scheme"], fields["token"], fields["server"]) == (
        "Bearer",
        "tok4",
        "https://api:6443",
    )


def test_a_failing_exec_plugin_is_a_clear_error(tmp_path: Path) -> None:
    plugin = tmp_path / "plugin.py"
    plugin.write_text("import sys\nsys.exit('no credentials for you')\n")
    user = {"exec": {"command": sys.executable, "args": [str(plugin)]}}
    with pytest.raises(config.ConfigError, match="no credentials for you"):
        config.configuration(str(_kubeconfig(tmp_path, user, {})))


def test_the_default_namespace_follows_the_context(tmp_path: Path) -> None:
    path = tmp_path / "config"
    path.write_text(
        yaml.safe_dump(
            {
                "current-context": "a",
                "contexts": [
                    {"name": "a", "context": {"cluster": "c", "namespace": "team-a"}},
                    {"name": "b", "context": {"cluster": "c"}},
                ],
            }
        )
    )
    assert config.default_namespace(str(path)) == "team-a"
    assert config.default_namespace(str(path), "b") == "default"


def test_the_official_client_is_not_imported(tmp_path: Path) -> None:
    # The loader and both clients stand alone: the official client costs ~40 MiB a process.
    code = (
        "import sys, ambient.common.kube.client, ambient.common.kube.aio\n"
        "assert 'kubernetes' not in sys.modules, 'imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
