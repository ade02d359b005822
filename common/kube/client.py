"""The one module that talks to the Kubernetes API (besides kopf's own watching).

Thin: each function is one API call with its error mapped to what the caller decides on.
Everything here is synchronous; the async handlers call it through a thread.

The official client's loader decides where the API server is and how to log in
(``configuration``); the requests themselves are plain JSON over its HTTP library, urllib3:
the operator sends manifests and reads JSON, so the client's per-type models, deep copies
and thread hand-offs would only cost memory and time.
"""

from __future__ import annotations

import base64
import json
import os
import ssl
from typing import Any, cast
from urllib.parse import quote, urlencode

import urllib3
from kubernetes import client
from kubernetes import config as k8s_config

from ambient.crds.models import GROUP, VERSION
from ambient.crds.naming import namespace_name, object_name

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


def secret_path(namespace: str, name: str) -> str:
    """The API path of one Secret, each segment quoted whole. Refuses (InvalidNameError,
    a ValueError) a namespace or a name that Kubernetes could not have given a Secret:
    names come from tenants' objects, and ``../../team-alpha/secrets/x`` must not walk the
    path into another namespace's Secret."""
    ns = quote(namespace_name(namespace), safe="")
    return f"/api/v1/namespaces/{ns}/secrets/{quote(object_name(name, 'Secret'), safe='')}"


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


def configuration(kubeconfig: str | None = None) -> client.Configuration:
    """In a cluster, the pod's service account; else the kubeconfig's current context
    (``kubeconfig``, $KUBECONFIG or ~/.kube/config), loaded by the official client, so
    every way of logging in it supports works here too: certificates, tokens, token
    files, and exec plugins such as EKS's and GKE's."""
    cfg = client.Configuration()
    if kubeconfig is None:
        try:
            k8s_config.load_incluster_config(client_configuration=cfg)
            return cfg
        except k8s_config.ConfigException:
            pass
    # $KUBECONFIG read now (the loader's default is read at its import), a list of paths
    # merged as kubectl does.
    path = kubeconfig or os.environ.get("KUBECONFIG") or None
    k8s_config.load_kube_config(config_file=path, client_configuration=cfg)
    return cfg


def ssl_context(cfg: client.Configuration) -> ssl.SSLContext | None:
    """The configuration's TLS settings as an SSLContext (None for plain HTTP): the
    cluster's CA, the client certificate (the loader writes embedded data to files)."""
    if not cfg.host.startswith("https"):
        return None
    context = ssl.create_default_context(cafile=cfg.ssl_ca_cert)
    if cfg.cert_file:
        context.load_cert_chain(cfg.cert_file, cfg.key_file)
    if not cfg.verify_ssl:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


class Kube:
    """Typed-enough access to the handful of calls the operator makes."""

    def __init__(self, connections: int = 32, kubeconfig: str | None = None) -> None:
        self._cfg = configuration(kubeconfig)
        self._server = self._cfg.host.rstrip("/")
        self._http = urllib3.PoolManager(
            num_pools=1,
            maxsize=connections,
            ssl_context=ssl_context(self._cfg),
            assert_hostname=False if not self._cfg.verify_ssl else None,
            server_hostname=self._cfg.tls_server_name or None,
            timeout=urllib3.Timeout(total=TIMEOUT_SECONDS),
            retries=False,
        )

    def _headers(self, content_type: str = "application/json") -> dict[str, str]:
        headers = {"Accept": "application/json", "Content-Type": content_type}
        # The loader's refresh hook runs here: a rotated service-account token is re-read,
        # an exec plugin's expired credential fetched again.
        token = self._cfg.get_api_key_with_prefix("authorization")
        if token:
            headers["Authorization"] = token
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
        url = self._server + path + (f"?{urlencode(query)}" if query else "")
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
            path = _COLLECTIONS["Job"].format(ns=quote(namespace)) + f"/{quote(name, safe='')}"
            return self._call("GET", path)
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
        """One data key of a Secret, decoded; None when the Secret or the key is missing.
        InvalidNameError (a ValueError) for a name no Secret can have: nothing is read."""
        path = secret_path(namespace, name)
        try:
            secret = self._call("GET", path)
        except GoneError:
            return None
        value = (secret.get("data") or {}).get(key)
        return base64.b64decode(value) if value else None
