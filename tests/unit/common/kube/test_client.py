"""Where the operator's API client connects and how it logs in: the official client's
loader decides (kubeconfig or in-cluster), the requests go over urllib3."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import yaml

from ambient.common.kube import client as kube
from ambient.crds import naming


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


def _client(path: Path) -> kube.Kube:
    return kube.Kube(connections=1, kubeconfig=str(path))


def test_the_current_context_and_its_token(tmp_path: Path) -> None:
    api = _client(_kubeconfig(tmp_path, {"token": "t0k"}, {"insecure-skip-tls-verify": True}))
    assert api._server == "https://api:6443"
    assert api._headers()["Authorization"] == "Bearer t0k"


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
    api = _client(_kubeconfig(tmp_path, user, {"insecure-skip-tls-verify": True}))
    assert api._headers()["Authorization"] == "Bearer from-the-plugin"


def test_the_kubeconfig_environment_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _kubeconfig(tmp_path, {"token": "t"}, {"insecure-skip-tls-verify": True})
    monkeypatch.setenv("KUBECONFIG", str(path))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    assert kube.configuration().host == "https://api:6443"


def test_a_missing_context_is_an_error_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "config"
    path.write_text(yaml.safe_dump({"current-context": "gone", "contexts": []}))
    with pytest.raises(Exception, match="gone"):
        kube.configuration(str(path))


def test_plain_http_has_no_tls_context(tmp_path: Path) -> None:
    cfg = kube.configuration(str(_kubeconfig(tmp_path, {"token": "t"}, {})))
    cfg.host = "http://127.0.0.1:8080"
    assert kube.ssl_context(cfg) is None


# --- Secret paths: names from tenants' objects (finding 2) --------------------------------


def test_a_secret_path_quotes_a_valid_name() -> None:
    assert (
        kube.secret_path("team-a", "signing.v2") == "/api/v1/namespaces/team-a/secrets/signing.v2"
    )


@pytest.mark.parametrize(
    ("namespace", "name"),
    [
        ("team-b", "../../team-alpha/secrets/x"),
        ("team-b", ".."),
        ("team-b", "x/y"),
        ("team-b", "x%2Fy"),
        ("team-b", ""),
        ("..", "x"),
        ("team-b/secrets", "x"),
    ],
)
def test_a_name_that_walks_the_path_is_refused(namespace: str, name: str) -> None:
    with pytest.raises(naming.InvalidNameError):
        kube.secret_path(namespace, name)


def test_the_operator_reads_no_secret_for_an_invalid_name(tmp_path: Path) -> None:
    api = _client(_kubeconfig(tmp_path, {"token": "t"}, {"insecure-skip-tls-verify": True}))
    calls: list[str] = []
    api._call = lambda method, path, *a, **k: calls.append(path) or {}  # type: ignore[method-assign]
    with pytest.raises(naming.InvalidNameError, match="Secret name"):
        api.read_secret_key("team-b", "../../team-alpha/secrets/x", "notifications")
    assert calls == []
    assert api.read_secret_key("team-b", "signing", "notifications") is None
    assert calls == ["/api/v1/namespaces/team-b/secrets/signing"]
