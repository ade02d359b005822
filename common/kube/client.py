"""The synchronous client: plain JSON over urllib3, one call per method.

Thin: each function is one API call; a non-2xx answer or no answer at all raises the one
taxonomy of ``errors`` (NotFoundError, ConflictError, InvalidError, RefusedError,
UnavailableError). The operator calls it from its handlers through a thread; the webhooks'
policy watch thread and the CLIs call it directly. ``aio`` is the asynchronous flavour over
the same configuration (``config``) and errors.

Why not the official client's API classes: the callers send manifests and read JSON, so
its per-type models, deep copies (``sanitize_for_serialization``) and thread hand-offs
would only cost memory and time; its loader (``config``) is kept.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any, cast
from urllib.parse import quote, urlencode

import urllib3

from ambient.crds import patches
from ambient.crds.models import GROUP, VERSION
from ambient.crds.naming import namespace_name, object_name

from . import errors
from .config import Configuration, authorization, configuration, ssl_context

__all__ = ["ApiError", "ConflictError", "GoneError", "Kube", "configuration", "ssl_context"]

TIMEOUT_SECONDS = 30.0
WATCH_SECONDS = 300  # the server ends each watch after this; callers list again

_COLLECTIONS = {
    "Job": "/apis/batch/v1/namespaces/{ns}/jobs",
    "ConfigMap": "/api/v1/namespaces/{ns}/configmaps",
    "ServiceAccount": "/api/v1/namespaces/{ns}/serviceaccounts",
    "Role": "/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/roles",
    "RoleBinding": "/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/rolebindings",
    "NetworkPolicy": "/apis/networking.k8s.io/v1/namespaces/{ns}/networkpolicies",
}
"""The kinds the operator creates, and where."""

_CUSTOM = f"/apis/{GROUP}/{VERSION}/namespaces/{{ns}}"
_LEASES = "/apis/coordination.k8s.io/v1/namespaces/{ns}/leases"

# The operator's names for the taxonomy's classes, kept while its modules move over.
ConflictError = errors.ConflictError
GoneError = errors.NotFoundError
ApiError = errors.KubeError


def secret_path(namespace: str, name: str) -> str:
    """The API path of one Secret, each segment quoted whole. Refuses (InvalidNameError,
    a ValueError) a namespace or a name that Kubernetes could not have given a Secret:
    names come from tenants' objects, and ``../../team-alpha/secrets/x`` must not walk the
    path into another namespace's Secret."""
    ns = quote(namespace_name(namespace), safe="")
    return f"/api/v1/namespaces/{ns}/secrets/{quote(object_name(name, 'Secret'), safe='')}"


class Kube:
    """Typed-enough access to the handful of calls the operator, the webhooks' policy watch
    and the CLIs make; ``call`` and ``watch`` for the rest."""

    def __init__(
        self,
        connections: int = 32,
        kubeconfig: str | None = None,
        *,
        cfg: Configuration | None = None,
        timeout: float | tuple[float, float] = TIMEOUT_SECONDS,
    ) -> None:
        """``cfg`` an already loaded configuration (else loaded now, from ``kubeconfig`` or
        as ``config.configuration`` says); ``timeout`` in total, or (connect, read)."""
        self._cfg = cfg if cfg is not None else configuration(kubeconfig)
        self._server = self._cfg.host.rstrip("/")
        self._connect_timeout = timeout[0] if isinstance(timeout, tuple) else timeout
        self._http = urllib3.PoolManager(
            num_pools=1,
            maxsize=connections,
            ssl_context=ssl_context(self._cfg),
            assert_hostname=False if not self._cfg.verify_ssl else None,
            server_hostname=self._cfg.tls_server_name or None,
            timeout=(
                urllib3.Timeout(connect=timeout[0], read=timeout[1])
                if isinstance(timeout, tuple)
                else urllib3.Timeout(total=timeout)
            ),
            retries=False,
        )

    @property
    def configuration(self) -> Configuration:
        """The loaded configuration, to share with the asynchronous flavour."""
        return self._cfg

    def _headers(self, content_type: str = "application/json") -> dict[str, str]:
        headers = {"Accept": "application/json", "Content-Type": content_type}
        token = authorization(self._cfg)  # runs the loader's refresh hook
        if token:
            headers["Authorization"] = token
        return headers

    def _send(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | list[Any] | None,
        query: dict[str, str] | None,
        content_type: str,
        **kwargs: Any,
    ) -> urllib3.BaseHTTPResponse:
        url = self._server + path + (f"?{urlencode(query)}" if query else "")
        try:
            return self._http.request(
                method,
                url,
                body=None if body is None else json.dumps(body).encode(),
                headers=self._headers(content_type),
                **kwargs,
            )
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise errors.unreachable(exc, f"{method} {path}") from exc

    def call(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | list[Any] | None = None,
        query: dict[str, str] | None = None,
        content_type: str = "application/json",
    ) -> dict[str, Any]:
        """One request; the decoded answer, or the taxonomy's error for its status."""
        response = self._send(method, path, body, query, content_type)
        if response.status >= 400:
            raise errors.from_status(response.status, response.data, f"{method} {path}")
        return cast(dict[str, Any], json.loads(response.data) if response.data else {})

    def watch(
        self,
        path: str,
        resource_version: str,
        *,
        timeout_seconds: int = WATCH_SECONDS,
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        """Watch a collection from ``resource_version``: (type, object) per event, bookmarks
        included, until the server ends the watch after ``timeout_seconds``. An ERROR event
        (e.g. 410 Gone: list again) is yielded like the others."""
        query = {
            "watch": "1",
            "resourceVersion": resource_version,
            "timeoutSeconds": str(timeout_seconds),
            "allowWatchBookmarks": "true",
        }
        response = self._send(
            "GET",
            path,
            None,
            query,
            "application/json",
            preload_content=False,
            # Events come when they come; the server ends the watch on time.
            timeout=urllib3.Timeout(connect=self._connect_timeout, read=timeout_seconds + 30),
        )
        try:
            if response.status >= 400:
                raise errors.from_status(response.status, response.read(), f"WATCH {path}")
            for line in response:
                if line.strip():
                    event = json.loads(line)
                    yield str(event["type"]), cast(dict[str, Any], event["object"])
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise errors.unreachable(exc, f"WATCH {path}") from exc
        finally:
            # Closed, not returned as is: a watch left early still has unread events.
            response.close()
            response.release_conn()

    def whoami(self) -> str:
        """The username the API server authenticates these credentials as
        (SelfSubjectReview)."""
        review = self.call(
            "POST",
            "/apis/authentication.k8s.io/v1/selfsubjectreviews",
            {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"},
        )
        return str(review["status"]["userInfo"]["username"])

    def create(self, manifest: dict[str, Any]) -> tuple[bool, dict[str, Any]]:
        """Create a Job, ConfigMap or runner identity object; on 409 return the existing
        one for an ownership check."""
        kind = manifest["kind"]
        if kind not in _COLLECTIONS:
            raise ValueError(f"the operator does not create {kind} objects")
        collection = _COLLECTIONS[kind].format(ns=quote(manifest["metadata"]["namespace"]))
        try:
            # The answer is not kept: the manifest says what was asked for.
            self.call("POST", collection, manifest)
        except errors.ConflictError:
            return False, self.call("GET", f"{collection}/{quote(manifest['metadata']['name'])}")
        return True, manifest

    def get_job(self, namespace: str, name: str) -> dict[str, Any] | None:
        """A Job by name, or None."""
        try:
            return self.call(
                "GET", _COLLECTIONS["Job"].format(ns=quote(namespace)) + f"/{quote(name, safe='')}"
            )
        except errors.NotFoundError:
            return None

    def list_pods(
        self, namespace: str, job_name: str, consistent: bool = False
    ) -> list[dict[str, Any]]:
        """The pods of a Job. By default from the API server's watch cache (cheap, and at
        most milliseconds behind); ``consistent`` reads the latest state."""
        query = {"labelSelector": f"job-name={job_name}"}
        if not consistent:
            query["resourceVersion"] = "0"
        body = self.call("GET", f"/api/v1/namespaces/{quote(namespace)}/pods", query=query)
        return list(body.get("items") or [])

    def _sessions(self, namespace: str) -> str:
        return _CUSTOM.format(ns=quote(namespace)) + "/sessions"

    def get_session(self, namespace: str, name: str) -> dict[str, Any]:
        """A Session by name; NotFoundError when it was deleted."""
        return self.call("GET", f"{self._sessions(namespace)}/{quote(name)}")

    def list_sessions_cached(self, namespace: str) -> list[dict[str, Any]]:
        """Every Session in a namespace (from the watch cache)."""
        body = self.call("GET", self._sessions(namespace), query={"resourceVersion": "0"})
        return list(body.get("items") or [])

    def patch_policy_status(self, namespace: str, name: str, patch: dict[str, Any]) -> None:
        """Merge-patch a NamespacePolicy's status (the usage roll-up's fields only)."""
        path = _CUSTOM.format(ns=quote(namespace)) + f"/namespacepolicies/{quote(name)}/status"
        self.call("PATCH", path, patch, content_type="application/merge-patch+json")

    def patch_session_status(
        self,
        namespace: str,
        name: str,
        resource_version: str,
        old: dict[str, Any] | None,
        new: dict[str, Any],
    ) -> dict[str, Any]:
        """Write what changed from the stored status ``old`` to ``new`` as one JSON patch
        guarded by resourceVersion (ConflictError when the Session changed since; see
        ``patches`` for why this is as safe as a PUT). Returns the Session as stored."""
        return self.call(
            "PATCH",
            f"{self._sessions(namespace)}/{quote(name)}/status",
            patches.status_patch(resource_version, old, new),
            content_type="application/json-patch+json",
        )

    def apply_session_condition(
        self, namespace: str, name: str, condition: dict[str, Any]
    ) -> dict[str, Any]:
        """Server-side apply one status condition under its own field manager: conditions
        are a map keyed by type, so this entry is merged and nothing else is touched."""
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "Session",
            "metadata": {"name": name, "namespace": namespace},
            "status": {"conditions": [condition]},
        }
        return self.call(
            "PATCH",
            f"{self._sessions(namespace)}/{quote(name)}/status",
            body,
            query={"fieldManager": "ambient-operator-conditions", "force": "true"},
            content_type="application/apply-patch+yaml",
        )

    def sessions_path(self, namespace: str | None) -> str:
        """The Sessions collection of one namespace, or of every namespace (None)."""
        if namespace is None:
            return f"/apis/{GROUP}/{VERSION}/sessions"
        return self._sessions(namespace)

    def patch_session(self, namespace: str, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        """Merge-patch a Session (its spec or annotations) with these credentials, so RBAC
        and the admission webhook decide as for any write."""
        return self.call(
            "PATCH",
            f"{self._sessions(namespace)}/{quote(name)}",
            patch,
            content_type="application/merge-patch+json",
        )

    def pod_log(self, namespace: str, pod: str, tail_lines: int | None = None) -> str:
        """A pod's log as text (the runner's only container)."""
        query = {"tailLines": str(tail_lines)} if tail_lines is not None else None
        path = f"/api/v1/namespaces/{quote(namespace)}/pods/{quote(pod)}/log"
        response = self._send("GET", path, None, query, "application/json")
        if response.status >= 400:
            raise errors.from_status(response.status, response.data, f"GET {path}")
        return bytes(response.data).decode(errors="replace")

    def get_lease(self, namespace: str, name: str) -> dict[str, Any] | None:
        """A coordination.k8s.io Lease (leader election), or None when there is none."""
        try:
            return self.call("GET", _LEASES.format(ns=quote(namespace)) + f"/{quote(name)}")
        except errors.NotFoundError:
            return None

    def write_lease(
        self,
        namespace: str,
        name: str,
        spec: dict[str, Any],
        resource_version: str | None,
        *,
        labels: dict[str, str] | None = None,
        annotations: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """Create the Lease (``resource_version`` None) or replace it, guarded by the
        resourceVersion read: two candidates writing at once, one gets 409 ConflictError.
        ``labels`` and ``annotations`` (a shard's declaration) are written in the same
        request."""
        collection = _LEASES.format(ns=quote(namespace))
        metadata: dict[str, Any] = {"name": name, "namespace": namespace}
        if labels:
            metadata["labels"] = labels
        if annotations:
            metadata["annotations"] = annotations
        body = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "spec": spec}
        if resource_version is None:
            return self.call("POST", collection, {**body, "metadata": metadata})
        metadata["resourceVersion"] = resource_version
        return self.call("PUT", f"{collection}/{quote(name)}", {**body, "metadata": metadata})

    def list_leases(self, namespace: str, selector: str) -> list[dict[str, Any]]:
        """The Leases of a namespace that match a label selector, read from etcd (the
        operator shards' hand-off must not act on a stale view)."""
        body = self.call(
            "GET", _LEASES.format(ns=quote(namespace)), query={"labelSelector": selector}
        )
        return list(body.get("items") or [])

    def get_configmap(self, namespace: str, name: str) -> dict[str, Any] | None:
        """A ConfigMap by name (read from etcd), or None when there is none."""
        try:
            return self.call(
                "GET", _COLLECTIONS["ConfigMap"].format(ns=quote(namespace)) + f"/{quote(name)}"
            )
        except errors.NotFoundError:
            return None

    def list_sessions(self, namespace: str) -> list[dict[str, Any]]:
        """Every Session in a namespace (retention runs rarely; one list per namespace)."""
        return list(self.call("GET", self._sessions(namespace)).get("items") or [])

    def delete_session(self, namespace: str, name: str, uid: str) -> bool:
        """Delete a Session only if it is still the one with ``uid`` (a recreated Session of
        the same name is not the one that expired); False when it is already gone."""
        try:
            self.call(
                "DELETE",
                f"{self._sessions(namespace)}/{quote(name)}",
                {"preconditions": {"uid": uid}, "propagationPolicy": "Background"},
            )
        except (errors.NotFoundError, errors.ConflictError):
            return False
        return True

    def delete_job(self, namespace: str, name: str) -> bool:
        """Delete a Job and, in the background, its pods; False when it was already gone."""
        try:
            self.call(
                "DELETE",
                _COLLECTIONS["Job"].format(ns=quote(namespace)) + f"/{quote(name)}",
                {"propagationPolicy": "Background"},
            )
        except errors.NotFoundError:
            return False
        return True

    def list_policies(self, namespace: str | None = None) -> list[dict[str, Any]]:
        """The NamespacePolicies of one namespace, or of all (few: one per team namespace)."""
        if namespace is None:
            path = f"/apis/{GROUP}/{VERSION}/namespacepolicies"
        else:
            path = _CUSTOM.format(ns=quote(namespace)) + "/namespacepolicies"
        return list(self.call("GET", path).get("items") or [])

    def read_secret_key(self, namespace: str, name: str, key: str) -> bytes | None:
        """One data key of a Secret, decoded; None when the Secret or the key is missing.
        InvalidNameError (a ValueError) for a name no Secret can have: nothing is read."""
        path = secret_path(namespace, name)
        try:
            secret = self.call("GET", path)
        except errors.NotFoundError:
            return None
        value = (secret.get("data") or {}).get(key)
        return base64.b64decode(value) if value else None

    def read_secret_data(self, namespace: str, name: str) -> dict[str, bytes] | None:
        """Every data key of a Secret, decoded; None when the Secret is missing.
        InvalidNameError (a ValueError) for a name no Secret can have: nothing is read."""
        try:
            secret = self.call("GET", secret_path(namespace, name))
        except errors.NotFoundError:
            return None
        return {k: base64.b64decode(v) for k, v in (secret.get("data") or {}).items() if v}
