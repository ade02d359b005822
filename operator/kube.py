"""The one module that talks to the Kubernetes API (besides kopf's own watching).

Thin: each function is one API call with its error mapped to what the caller decides on.
Everything here is synchronous; the async handlers call it through a thread.

Plain JSON over HTTPS (urllib3), not the official client: the operator sends manifests
and reads JSON, and the client's import alone (a model class for every Kubernetes type)
holds about 40 MiB for as long as the process lives.
"""

from __future__ import annotations

import base64
import json
import os
import ssl
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast
from urllib.parse import quote, urlencode

import urllib3
import yaml

from ambient.crds.models import GROUP, VERSION

SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
TIMEOUT_SECONDS = 30.0

_COLLECTIONS = {
    "Job": "/apis/batch/v1/namespaces/{ns}/jobs",
    "ConfigMap": "/api/v1/namespaces/{ns}/configmaps",
    "ServiceAccount": "/api/v1/namespaces/{ns}/serviceaccounts",
    "Role": "/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/roles",
    "RoleBinding": "/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/rolebindings",
}
"""The kinds the operator creates, and where."""

_CUSTOM = f"/apis/{GROUP}/{VERSION}/namespaces/{{ns}}"


class ConflictError(Exception):
    """The object changed since it was read (HTTP 409 on an update)."""


class GoneError(Exception):
    """The object no longer exists (HTTP 404)."""


class ApiError(Exception):
    """The API server refused a request (any status the caller does not map)."""

    def __init__(self, status: int, method: str, path: str, body: bytes) -> None:
        try:
            message = json.loads(body).get("message", "")
        except ValueError:
            message = body[:200].decode("utf-8", "replace")
        super().__init__(f"{method} {path}: HTTP {status}: {message}")
        self.status = status


@dataclass(frozen=True)
class Connection:
    """Where the API server is and how to prove who we are, from the pod's service
    account or a kubeconfig (certificates, a token or a token file)."""

    server: str
    ca_file: str | None = None
    ca_data: str | None = None
    insecure: bool = False
    cert_file: str | None = None
    cert_data: str | None = None
    key_file: str | None = None
    key_data: str | None = None
    token: str | None = None
    token_file: str | None = None
    """Read again on every request: projected service account tokens are rotated."""


def in_cluster() -> Connection | None:
    """The pod's service account, when running in a cluster."""
    host, port = (
        os.environ.get("KUBERNETES_SERVICE_HOST"),
        os.environ.get("KUBERNETES_SERVICE_PORT"),
    )
    token = SERVICE_ACCOUNT_DIR / "token"
    if not host or not port or not token.exists():
        return None
    host = f"[{host}]" if ":" in host else host
    return Connection(
        server=f"https://{host}:{port}",
        ca_file=str(SERVICE_ACCOUNT_DIR / "ca.crt"),
        token_file=str(token),
    )


def from_kubeconfig(path: str | None = None) -> Connection:
    """The current context of a kubeconfig (``path``, else $KUBECONFIG, else
    ~/.kube/config). Relative file names are relative to the kubeconfig's folder."""
    location = Path(
        path or os.environ.get("KUBECONFIG", "").split(os.pathsep)[0] or "~/.kube/config"
    ).expanduser()
    config = yaml.safe_load(location.read_text()) or {}

    def named(section: str, name: str) -> dict[str, Any]:
        for item in config.get(section) or []:
            if item.get("name") == name:
                return cast(dict[str, Any], item.get(section[:-1]) or {})
        raise ValueError(f"kubeconfig {location}: no {section[:-1]} named {name!r}")

    context = named("contexts", config.get("current-context") or "")
    cluster = named("clusters", context.get("cluster", ""))
    user = named("users", context.get("user", ""))
    if user.get("exec") or user.get("auth-provider"):
        raise ValueError(
            f"kubeconfig {location}: the user authenticates with a plugin; the operator "
            "needs a client certificate or a token (or runs in the cluster)"
        )

    def file(value: str | None) -> str | None:
        return str(location.parent / value) if value else None

    return Connection(
        server=cluster["server"],
        ca_file=file(cluster.get("certificate-authority")),
        ca_data=cluster.get("certificate-authority-data"),
        insecure=bool(cluster.get("insecure-skip-tls-verify")),
        cert_file=file(user.get("client-certificate")),
        cert_data=user.get("client-certificate-data"),
        key_file=file(user.get("client-key")),
        key_data=user.get("client-key-data"),
        token=user.get("token"),
        token_file=file(user.get("tokenFile")),
    )


def connection(kubeconfig: str | None = None) -> Connection:
    """In the cluster, the service account; else the kubeconfig."""
    found = None if kubeconfig else in_cluster()
    return found or from_kubeconfig(kubeconfig)


def ssl_context(conn: Connection) -> ssl.SSLContext:
    """Verifies the API server against the cluster's CA; presents the client certificate."""
    context = ssl.create_default_context(
        cafile=conn.ca_file,
        cadata=base64.b64decode(conn.ca_data).decode() if conn.ca_data else None,
    )
    if conn.insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if conn.cert_data or conn.key_data:
        # ssl loads a key pair only from files: a private folder, removed at once.
        with tempfile.TemporaryDirectory() as folder:
            cert, key = Path(folder, "cert.pem"), Path(folder, "key.pem")
            for target, data, given in (
                (cert, conn.cert_data, conn.cert_file),
                (key, conn.key_data, conn.key_file),
            ):
                pem = base64.b64decode(data) if data else Path(given or "").read_bytes()
                target.write_bytes(pem)  # the folder is the owner's only (mode 0700)
            context.load_cert_chain(str(cert), str(key))
    elif conn.cert_file and conn.key_file:
        context.load_cert_chain(conn.cert_file, conn.key_file)
    return context


class Kube:
    """Typed-enough access to the handful of calls the operator makes."""

    def __init__(self, connections: int = 32, kubeconfig: str | None = None) -> None:
        self._conn = connection(kubeconfig)
        self._http = urllib3.PoolManager(
            num_pools=1,
            maxsize=connections,
            ssl_context=ssl_context(self._conn),
            assert_hostname=False if self._conn.insecure else None,
            timeout=urllib3.Timeout(total=TIMEOUT_SECONDS),
            retries=False,
        )

    def _headers(self, content_type: str = "application/json") -> dict[str, str]:
        headers = {"Accept": "application/json", "Content-Type": content_type}
        token = self._conn.token
        if self._conn.token_file:
            token = Path(self._conn.token_file).read_text().strip()
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return headers

    def _call(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        query: dict[str, str] | None = None,
        content_type: str = "application/json",
    ) -> dict[str, Any]:
        """One request; the decoded answer, or an error by status (404 GoneError, 409
        ConflictError, others ApiError)."""
        url = self._conn.server.rstrip("/") + path + (f"?{urlencode(query)}" if query else "")
        response = self._http.request(
            method,
            url,
            body=None if body is None else json.dumps(body).encode(),
            headers=self._headers(content_type),
        )
        if response.status == 404:
            raise GoneError(path)
        if response.status == 409:
            raise ConflictError(path)
        if response.status >= 400:
            raise ApiError(response.status, method, path, response.data)
        return cast(dict[str, Any], json.loads(response.data) if response.data else {})

    def create(self, manifest: dict[str, Any]) -> tuple[bool, dict[str, Any]]:
        """Create a Job, ConfigMap or runner identity object; on 409 return the existing
        one for an ownership check."""
        kind = manifest["kind"]
        if kind not in _COLLECTIONS:
            raise ValueError(f"the operator does not create {kind} objects")
        collection = _COLLECTIONS[kind].format(ns=quote(manifest["metadata"]["namespace"]))
        try:
            # The answer is not kept: the manifest says what was asked for.
            self._call("POST", collection, manifest)
        except ConflictError:
            return False, self._call("GET", f"{collection}/{quote(manifest['metadata']['name'])}")
        return True, manifest

    def get_job(self, namespace: str, name: str) -> dict[str, Any] | None:
        """A Job by name, or None."""
        try:
            return self._call("GET", _COLLECTIONS["Job"].format(ns=quote(namespace)) + f"/{name}")
        except GoneError:
            return None

    def list_pods(
        self, namespace: str, job_name: str, consistent: bool = False
    ) -> list[dict[str, Any]]:
        """The pods of a Job. By default from the API server's watch cache (cheap, and at
        most milliseconds behind); ``consistent`` reads the latest state."""
        query = {"labelSelector": f"job-name={job_name}"}
        if not consistent:
            query["resourceVersion"] = "0"
        body = self._call("GET", f"/api/v1/namespaces/{quote(namespace)}/pods", query=query)
        return list(body.get("items") or [])

    def _sessions(self, namespace: str) -> str:
        return _CUSTOM.format(ns=quote(namespace)) + "/sessions"

    def get_session(self, namespace: str, name: str) -> dict[str, Any]:
        """A Session by name; GoneError when it was deleted."""
        return self._call("GET", f"{self._sessions(namespace)}/{quote(name)}")

    def list_sessions_cached(self, namespace: str) -> list[dict[str, Any]]:
        """Every Session in a namespace (from the watch cache)."""
        body = self._call("GET", self._sessions(namespace), query={"resourceVersion": "0"})
        return list(body.get("items") or [])

    def patch_policy_status(self, namespace: str, name: str, patch: dict[str, Any]) -> None:
        """Merge-patch a NamespacePolicy's status (the usage roll-up's fields only)."""
        path = _CUSTOM.format(ns=quote(namespace)) + f"/namespacepolicies/{quote(name)}/status"
        self._call("PATCH", path, patch, content_type="application/merge-patch+json")

    def replace_session_status(
        self, namespace: str, name: str, resource_version: str, status: dict[str, Any]
    ) -> dict[str, Any]:
        """Write the whole status, guarded by resourceVersion (optimistic concurrency)."""
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "Session",
            "metadata": {"name": name, "namespace": namespace, "resourceVersion": resource_version},
            "status": status,
        }
        return self._call("PUT", f"{self._sessions(namespace)}/{quote(name)}/status", body)

    def list_sessions(self, namespace: str) -> list[dict[str, Any]]:
        """Every Session in a namespace (retention runs rarely; one list per namespace)."""
        return list(self._call("GET", self._sessions(namespace)).get("items") or [])

    def delete_session(self, namespace: str, name: str, uid: str) -> bool:
        """Delete a Session only if it is still the one with ``uid`` (a recreated Session of
        the same name is not the one that expired); False when it is already gone."""
        try:
            self._call(
                "DELETE",
                f"{self._sessions(namespace)}/{quote(name)}",
                {"preconditions": {"uid": uid}, "propagationPolicy": "Background"},
            )
        except (GoneError, ConflictError):
            return False
        return True

    def delete_job(self, namespace: str, name: str) -> bool:
        """Delete a Job and, in the background, its pods; False when it was already gone."""
        try:
            self._call(
                "DELETE",
                _COLLECTIONS["Job"].format(ns=quote(namespace)) + f"/{quote(name)}",
                {"propagationPolicy": "Background"},
            )
        except GoneError:
            return False
        return True

    def list_policies(self, namespace: str | None = None) -> list[dict[str, Any]]:
        """The NamespacePolicies of one namespace, or of all (few: one per team namespace)."""
        if namespace is None:
            path = f"/apis/{GROUP}/{VERSION}/namespacepolicies"
        else:
            path = _CUSTOM.format(ns=quote(namespace)) + "/namespacepolicies"
        return list(self._call("GET", path).get("items") or [])

    def read_secret_key(self, namespace: str, name: str, key: str) -> bytes | None:
        """One data key of a Secret, decoded; None when the Secret or the key is missing."""
        try:
            secret = self._call("GET", f"/api/v1/namespaces/{quote(namespace)}/secrets/{name}")
        except GoneError:
            return None
        value = (secret.get("data") or {}).get(key)
        return base64.b64decode(value) if value else None
