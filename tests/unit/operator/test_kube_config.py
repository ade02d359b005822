"""Where the operator's API client connects and how it authenticates."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
import yaml

from ambient.operator import kube


def _kubeconfig(tmp_path: Path, user: dict[str, object], cluster: dict[str, object]) -> Path:
    path = tmp_path / "config"
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [
                    {"name": "other", "cluster": {"server": "https://wrong:1"}},
                    {"name": "c", "cluster": {"server": "https://api:6443", **cluster}},
                ],
                "users": [{"name": "u", "user": user}],
                "contexts": [{"name": "ctx", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "ctx",
            }
        )
    )
    return path


def test_current_context_with_files_relative_to_the_kubeconfig(tmp_path: Path) -> None:
    path = _kubeconfig(
        tmp_path,
        {"client-certificate": "pki/admin.crt", "client-key": "/abs/admin.key"},
        {"certificate-authority": "pki/ca.crt"},
    )
    conn = kube.from_kubeconfig(str(path))
    assert conn.server == "https://api:6443"
    assert conn.ca_file == str(tmp_path / "pki" / "ca.crt")
    assert conn.cert_file == str(tmp_path / "pki" / "admin.crt")
    assert conn.key_file == "/abs/admin.key"
    assert conn.token is None and not conn.insecure


def test_embedded_data_and_a_token(tmp_path: Path) -> None:
    ca = base64.b64encode(b"-----BEGIN CERTIFICATE-----").decode()
    path = _kubeconfig(tmp_path, {"token": "t0k"}, {"certificate-authority-data": ca})
    conn = kube.from_kubeconfig(str(path))
    assert (conn.ca_data, conn.token, conn.ca_file) == (ca, "t0k", None)


def test_the_kubeconfig_environment_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _kubeconfig(tmp_path, {"token": "t"}, {})
    monkeypatch.setenv("KUBECONFIG", str(path))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    assert kube.connection().server == "https://api:6443"


def test_a_plugin_login_is_refused_with_a_clear_error(tmp_path: Path) -> None:
    path = _kubeconfig(tmp_path, {"exec": {"command": "aws"}}, {})
    with pytest.raises(ValueError, match="plugin"):
        kube.from_kubeconfig(str(path))


def test_a_missing_context_entry_is_named(tmp_path: Path) -> None:
    path = tmp_path / "config"
    path.write_text(yaml.safe_dump({"current-context": "gone", "contexts": []}))
    with pytest.raises(ValueError, match="no context named 'gone'"):
        kube.from_kubeconfig(str(path))


def test_in_cluster_reads_the_service_account_token_on_every_request(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "token").write_text("first\n")
    monkeypatch.setattr(kube, "SERVICE_ACCOUNT_DIR", tmp_path)
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
    conn = kube.connection()
    assert conn.server == "https://10.0.0.1:443"
    assert conn.ca_file == str(tmp_path / "ca.crt") and conn.token_file == str(tmp_path / "token")
    client = kube.Kube.__new__(kube.Kube)
    client._conn = conn
    assert client._headers()["Authorization"] == "Bearer first"
    (tmp_path / "token").write_text("rotated\n")
    assert client._headers()["Authorization"] == "Bearer rotated"


def test_outside_a_cluster_no_service_account_is_assumed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    assert kube.in_cluster() is None
