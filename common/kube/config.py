"""Where the API server is and how to log in: the one loader every client here uses.

Read when called, never at import: in a cluster, the pod's service account; else the
kubeconfig's current context (the path given, $KUBECONFIG as it is now — a list of paths
merged as kubectl does — or ~/.kube/config). The logins kubectl supports without a
browser work here: client certificates (files or embedded data), tokens, token files,
basic auth, and exec plugins such as EKS's and GKE's (``client.authentication.k8s.io``);
a legacy ``auth-provider`` is used for the token it holds (``id-token`` or
``access-token``), never refreshed. ``authorization`` is called for every request: a
rotated service-account token or token file is read again after a minute, an exec
plugin's expired credential fetched again.

Its own parser, not the official client's loader: importing that client holds about
40 MiB in every process (its thousand model classes come with any of its modules), the
largest share of the operator's memory at rest (docs/benchmarks.md).
"""

from __future__ import annotations

import atexit
import base64
import binascii
import json
import os
import ssl
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

TOKEN_REREAD_SECONDS = 60.0
"""How long a token read from a file is used before the file is read again (a projected
service-account token rotates well before it expires)."""

SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")
"""Where a pod's service account is mounted."""


class ConfigError(ValueError):
    """No usable login: no kubeconfig, a context or cluster it does not define, a
    credential that cannot be read, an exec plugin that failed."""


@dataclass(eq=False)
class Configuration:
    """A loaded configuration: the server, TLS files, and the credential (read through
    ``authorization``, which refreshes what expires)."""

    host: str = "http://localhost"
    """The API server's URL."""
    ssl_ca_cert: str | None = None
    """The cluster's CA bundle (a file; embedded data is written to a private one)."""
    cert_file: str | None = None
    """The client certificate, when logging in by certificate."""
    key_file: str | None = None
    """The client certificate's key."""
    verify_ssl: bool = True
    """False with ``insecure-skip-tls-verify``."""
    tls_server_name: str | None = None
    """The name to check the server's certificate against, when not the host's."""
    token: str | None = None
    """A bearer token given as is."""
    token_file: str | None = None
    """A file holding the bearer token, read again after TOKEN_REREAD_SECONDS."""
    username: str | None = None
    """Basic auth (with ``password``)."""
    password: str | None = None
    exec_plugin: ExecPlugin | None = None
    """An exec plugin that prints the credential."""
    default_namespace: str | None = None
    """The context's namespace (in a pod, its own)."""
    _cached: tuple[str, float] | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def bearer(self) -> str | None:
        """The bearer token now (reading the file or running the plugin when due)."""
        if self.exec_plugin is not None:
            return self.exec_plugin.token()
        if self.token_file:
            with self._lock:
                now = time.monotonic()
                if self._cached is None or now - self._cached[1] > TOKEN_REREAD_SECONDS:
                    self._cached = (_read_token(self.token_file), now)
                return self._cached[0]
        return self.token or None


def _read_token(path: str) -> str:
    try:
        return Path(path).read_text().strip()
    except OSError as exc:
        raise ConfigError(f"cannot read the token file {path}: {exc.strerror}") from exc


@dataclass(eq=False)
class ExecPlugin:
    """A ``client.authentication.k8s.io`` exec plugin: run when its last credential
    expired (or gave none), its token kept until then."""

    command: str
    args: list[str]
    env: dict[str, str]
    api_version: str
    run: Callable[..., subprocess.CompletedProcess[str]] = subprocess.run
    _token: str | None = None
    expires: datetime | None = None
    """When the last credential expires (None: never said)."""
    _lock: threading.Lock = field(default_factory=threading.Lock)
    cert_data: bytes | None = None
    key_data: bytes | None = None

    def token(self) -> str | None:
        with self._lock:
            fresh = self.expires is None or datetime.now(UTC) < self.expires
            if self._token is None or not fresh:
                self.fetch()
            return self._token

    def fetch(self) -> None:
        """Run the plugin; keep its token (and certificate) and when they expire."""
        info = {
            "apiVersion": self.api_version,
            "kind": "ExecCredential",
            "spec": {"interactive": False},
        }
        try:
            done = self.run(
                [self.command, *self.args],
                env={**os.environ, **self.env, "KUBERNETES_EXEC_INFO": json.dumps(info)},
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
        except (OSError, subprocess.SubprocessError) as exc:
            raise ConfigError(f"exec plugin {self.command}: {exc}") from exc
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or [""])[-1][:300]
            raise ConfigError(f"exec plugin {self.command} exited {done.returncode}: {last}")
        try:
            status = json.loads(done.stdout)["status"]
        except (ValueError, KeyError, TypeError) as exc:
            raise ConfigError(f"exec plugin {self.command} printed no ExecCredential") from exc
        self._token = status.get("token") or None
        if status.get("clientCertificateData") and status.get("clientKeyData"):
            self.cert_data = str(status["clientCertificateData"]).encode()
            self.key_data = str(status["clientKeyData"]).encode()
        expires = status.get("expirationTimestamp")
        self.expires = datetime.fromisoformat(expires) if expires else None


_TEMPORARY: list[str] = []


@atexit.register
def _remove_temporary() -> None:
    for path in _TEMPORARY:
        Path(path).unlink(missing_ok=True)


def _data_file(data: bytes, what: str) -> str:
    """Embedded PEM data in a private file (TLS libraries load certificates from files)."""
    handle, path = tempfile.mkstemp(prefix=f"ambient-{what}-")
    with os.fdopen(handle, "wb") as out:
        out.write(data)
    _TEMPORARY.append(path)
    return path


def _decoded(value: Any, what: str) -> bytes:
    try:
        return base64.b64decode(str(value), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ConfigError(f"{what} is not base64") from exc


def configuration(kubeconfig: str | None = None, context: str | None = None) -> Configuration:
    """In a cluster (and no ``kubeconfig`` or ``context`` given), the pod's service
    account; else the kubeconfig's ``context`` or current context (``kubeconfig``,
    $KUBECONFIG or ~/.kube/config). ConfigError when neither gives a login."""
    if kubeconfig is None and context is None:
        cfg = in_cluster()
        if cfg is not None:
            return cfg
    return from_kubeconfig(_Merged.load(kubeconfig), context)


def in_cluster() -> Configuration | None:
    """The pod's service account, or None outside a pod."""
    host, port = (
        os.environ.get("KUBERNETES_SERVICE_HOST"),
        os.environ.get("KUBERNETES_SERVICE_PORT"),
    )
    token = SERVICE_ACCOUNT / "token"
    if not host or not port or not token.is_file():
        return None
    if ":" in host:  # IPv6
        host = f"[{host}]"
    namespace = SERVICE_ACCOUNT / "namespace"
    return Configuration(
        host=f"https://{host}:{port}",
        ssl_ca_cert=str(SERVICE_ACCOUNT / "ca.crt"),
        token_file=str(token),
        default_namespace=namespace.read_text().strip() if namespace.is_file() else None,
    )


@dataclass
class _Merged:
    """Kubeconfig files merged as kubectl does: the first file to set the current context
    or to define a name wins; relative paths are relative to the file that names them."""

    current: str | None = None
    contexts: dict[str, dict[str, Any]] = field(default_factory=dict)
    clusters: dict[str, tuple[dict[str, Any], Path]] = field(default_factory=dict)
    users: dict[str, tuple[dict[str, Any], Path]] = field(default_factory=dict)

    @classmethod
    def load(cls, kubeconfig: str | None) -> _Merged:
        # $KUBECONFIG read now, not at import.
        listed = kubeconfig or os.environ.get("KUBECONFIG") or ""
        paths = [Path(p).expanduser() for p in listed.split(os.pathsep) if p]
        if kubeconfig is None:
            paths = [p for p in paths if p.is_file()] if paths else []
            default = Path("~/.kube/config").expanduser()
            if not listed and default.is_file():
                paths = [default]
        if not paths:
            raise ConfigError(
                "no kubeconfig: set KUBECONFIG or write ~/.kube/config (or run in a pod)"
            )
        merged = cls()
        for path in paths:
            try:
                doc = yaml.safe_load(path.read_text()) or {}
            except OSError as exc:
                raise ConfigError(f"cannot read the kubeconfig {path}: {exc.strerror}") from exc
            except yaml.YAMLError as exc:
                raise ConfigError(f"the kubeconfig {path} is not YAML") from exc
            if not isinstance(doc, dict):
                raise ConfigError(f"the kubeconfig {path} is not a mapping")
            merged.current = merged.current or doc.get("current-context") or None
            for item in doc.get("contexts") or []:
                merged.contexts.setdefault(item["name"], item.get("context") or {})
            for item in doc.get("clusters") or []:
                merged.clusters.setdefault(item["name"], (item.get("cluster") or {}, path.parent))
            for item in doc.get("users") or []:
                merged.users.setdefault(item["name"], (item.get("user") or {}, path.parent))
        return merged

    def context(self, name: str | None) -> dict[str, Any]:
        chosen = name or self.current
        if not chosen:
            raise ConfigError("the kubeconfig sets no current-context and none was given")
        if chosen not in self.contexts:
            raise ConfigError(f"the kubeconfig has no context {chosen!r}")
        return self.contexts[chosen]


def _path(value: Any, base: Path) -> str:
    path = Path(str(value)).expanduser()
    return str(path if path.is_absolute() else base / path)


def from_kubeconfig(merged: _Merged, context_name: str | None) -> Configuration:
    """The configuration of one context of merged kubeconfig files."""
    context = merged.context(context_name)
    cluster_name, user_name = context.get("cluster"), context.get("user")
    if cluster_name not in merged.clusters:
        raise ConfigError(f"the kubeconfig has no cluster {cluster_name!r}")
    cluster, cluster_dir = merged.clusters[cluster_name]
    user, user_dir = merged.users.get(user_name or "", ({}, Path()))
    if not cluster.get("server"):
        raise ConfigError(f"the kubeconfig's cluster {cluster_name!r} names no server")
    cfg = Configuration(
        host=str(cluster["server"]),
        verify_ssl=not cluster.get("insecure-skip-tls-verify", False),
        tls_server_name=cluster.get("tls-server-name") or None,
        default_namespace=context.get("namespace") or None,
    )
    if cluster.get("certificate-authority-data"):
        data = _decoded(cluster["certificate-authority-data"], "certificate-authority-data")
        cfg.ssl_ca_cert = _data_file(data, "ca")
    elif cluster.get("certificate-authority"):
        cfg.ssl_ca_cert = _path(cluster["certificate-authority"], cluster_dir)
    for key, attr in (("client-certificate", "cert_file"), ("client-key", "key_file")):
        if user.get(f"{key}-data"):
            setattr(cfg, attr, _data_file(_decoded(user[f"{key}-data"], f"{key}-data"), key))
        elif user.get(key):
            setattr(cfg, attr, _path(user[key], user_dir))
    if user.get("tokenFile"):
        cfg.token_file = _path(user["tokenFile"], user_dir)
    cfg.token = user.get("token") or None
    provider = (user.get("auth-provider") or {}).get("config") or {}
    cfg.token = cfg.token or provider.get("id-token") or provider.get("access-token") or None
    cfg.username, cfg.password = user.get("username"), user.get("password")
    if user.get("exec"):
        cfg.exec_plugin = _exec_plugin(user["exec"], user_dir)
        if cfg.exec_plugin.cert_data and cfg.exec_plugin.key_data:
            cfg.cert_file = _data_file(cfg.exec_plugin.cert_data, "exec-cert")
            cfg.key_file = _data_file(cfg.exec_plugin.key_data, "exec-key")
    return cfg


def _exec_plugin(spec: dict[str, Any], base: Path) -> ExecPlugin:
    command = str(spec.get("command") or "")
    if not command:
        raise ConfigError("the kubeconfig's exec plugin names no command")
    if os.sep in command and not Path(command).is_absolute():
        command = str(base / command)  # as kubectl: relative to the kubeconfig
    plugin = ExecPlugin(
        command=command,
        args=[str(a) for a in spec.get("args") or []],
        env={str(e["name"]): str(e["value"]) for e in spec.get("env") or []},
        api_version=str(spec.get("apiVersion") or "client.authentication.k8s.io/v1"),
    )
    # Run now: a plugin that gives a client certificate must give it before any TLS
    # connection is made, and a broken one should stop the process at start-up.
    plugin.fetch()
    return plugin


def default_namespace(kubeconfig: str | None = None, context: str | None = None) -> str:
    """The namespace a command acts in when none is given, as kubectl chooses it: the
    context's namespace, in a pod its own, else ``default``."""
    try:
        chosen = _Merged.load(kubeconfig).context(context)
    except ConfigError:
        try:
            return (SERVICE_ACCOUNT / "namespace").read_text().strip() or "default"
        except OSError:
            return "default"
    return str(chosen.get("namespace") or "default")


def authorization(cfg: Configuration) -> str | None:
    """The Authorization header's value (``Bearer ...`` or ``Basic ...``), or None when the
    configuration logs in by client certificate only. Refreshes what expired."""
    token = cfg.bearer()
    if token:
        # A token file written with a final newline would otherwise end the header.
        return f"Bearer {token.strip()}"
    if cfg.username:
        pair = f"{cfg.username}:{cfg.password or ''}".encode()
        return "Basic " + base64.b64encode(pair).decode()
    return None


def ssl_context(cfg: Configuration) -> ssl.SSLContext | None:
    """The configuration's TLS settings as an SSLContext (None for plain HTTP): the
    cluster's CA, the client certificate."""
    if not cfg.host.startswith("https"):
        return None
    context = ssl.create_default_context(cafile=cfg.ssl_ca_cert)
    if cfg.cert_file:
        context.load_cert_chain(cfg.cert_file, cfg.key_file)
    if not cfg.verify_ssl:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def connection_fields(cfg: Configuration) -> dict[str, Any]:
    """The configuration as kopf's ``ConnectionInfo`` takes it (server, TLS files, the
    credential now), so kopf's watches log in as the clients here do."""
    header = authorization(cfg)
    scheme, _, credential = (header or "").partition(" ")
    fields: dict[str, Any] = {
        "server": cfg.host,
        "ca_path": cfg.ssl_ca_cert,
        "insecure": not cfg.verify_ssl,
        "certificate_path": cfg.cert_file,
        "private_key_path": cfg.key_file,
        "default_namespace": cfg.default_namespace,
    }
    if scheme == "Bearer":
        fields.update(scheme="Bearer", token=credential)
    elif scheme == "Basic":
        fields.update(username=cfg.username, password=cfg.password or "")
    expires = cfg.exec_plugin.expires if cfg.exec_plugin is not None else None
    if expires is not None:
        fields["expiration"] = expires
    return fields
