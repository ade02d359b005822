"""The one module that talks to the Kubernetes API (besides kopf's own watching).

Thin: each function is one API call with its error mapped to what the caller decides on.
Everything here is synchronous; the async handlers call it through a thread.
"""

from __future__ import annotations

import base64
import json
from typing import Any, cast

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from ambient.crds.models import GROUP, VERSION

_CREATE = {
    "Job": "job",
    "ConfigMap": "config_map",
    "ServiceAccount": "service_account",
    "Role": "role",
    "RoleBinding": "role_binding",
}
"""The kinds the operator creates, and the client's method suffix for each."""


class ConflictError(Exception):
    """The object changed since it was read (HTTP 409 on an update)."""


class GoneError(Exception):
    """The object no longer exists (HTTP 404)."""


class Kube:
    """Typed-enough access to the handful of calls the operator makes."""

    def __init__(self, connections: int = 32, kubeconfig: str | None = None) -> None:
        try:
            config.load_incluster_config()
        except config.ConfigException:
            config.load_kube_config(config_file=kubeconfig)
        cfg = client.Configuration.get_default_copy()
        cfg.connection_pool_maxsize = connections
        api = client.ApiClient(cfg)
        self.custom = client.CustomObjectsApi(api)
        self.batch = client.BatchV1Api(api)
        self.core = client.CoreV1Api(api)
        self.rbac = client.RbacAuthorizationV1Api(api)
        self._api = api

    def _api_for(self, kind: str) -> Any:
        return {"Job": self.batch, "Role": self.rbac, "RoleBinding": self.rbac}.get(kind, self.core)

    def create(self, manifest: dict[str, Any]) -> tuple[bool, dict[str, Any]]:
        """Create a Job, ConfigMap or runner identity object; on 409 return the existing
        one for an ownership check."""
        ns = manifest["metadata"]["namespace"]
        name = manifest["metadata"]["name"]
        kind = manifest["kind"]
        try:
            # _preload_content=False: the response is not turned into model classes, which
            # costs more CPU than the request itself.
            # The body must still be read: an unread response keeps its connection out of
            # the pool, and every later call would pay for a new TLS handshake.
            if kind in _CREATE:
                response = getattr(self._api_for(kind), f"create_namespaced_{_CREATE[kind]}")(
                    ns, cast(Any, manifest), _preload_content=False
                )
                cast(Any, response).data  # noqa: B018 - drains the body, frees the connection
                return True, manifest
            raise ValueError(f"the operator does not create {kind} objects")
        except ApiException as exc:
            if exc.status != 409:
                raise
            existing = getattr(self._api_for(kind), f"read_namespaced_{_CREATE[kind]}")(name, ns)
            return False, self._api.sanitize_for_serialization(existing)

    def get_job(self, namespace: str, name: str) -> dict[str, Any] | None:
        """A Job by name, or None."""
        try:
            job = self.batch.read_namespaced_job(name, namespace)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        result: dict[str, Any] = self._api.sanitize_for_serialization(job)
        return result

    def list_pods(
        self, namespace: str, job_name: str, consistent: bool = False
    ) -> list[dict[str, Any]]:
        """The pods of a Job. By default from the API server's watch cache (cheap, and at
        most milliseconds behind); ``consistent`` reads the latest state."""
        response = self.core.list_namespaced_pod(
            namespace,
            label_selector=f"job-name={job_name}",
            resource_version=None if consistent else "0",
            _preload_content=False,
        )
        items: list[dict[str, Any]] = json.loads(cast(Any, response).data).get("items") or []
        return items

    def get_session(self, namespace: str, name: str) -> dict[str, Any]:
        """A Session by name; GoneError when it was deleted."""
        try:
            body = cast(
                dict[str, Any],
                self.custom.get_namespaced_custom_object(
                    GROUP, VERSION, namespace, "sessions", name
                ),
            )
        except ApiException as exc:
            if exc.status == 404:
                raise GoneError(name) from exc
            raise
        return body

    def list_sessions_cached(self, namespace: str) -> list[dict[str, Any]]:
        """Every Session in a namespace (from the watch cache)."""
        body = self.custom.list_namespaced_custom_object(
            GROUP, VERSION, namespace, "sessions", resource_version="0"
        )
        return list(cast(dict[str, Any], body).get("items") or [])

    def list_policies_in(self, namespaces: list[str]) -> list[dict[str, Any]]:
        """Every NamespacePolicy in these namespaces (all when the list is empty: an
        operator limited to namespaces may not list cluster-wide)."""
        if not namespaces:
            body = self.custom.list_cluster_custom_object(
                GROUP, VERSION, "namespacepolicies", resource_version="0"
            )
            return list(cast(dict[str, Any], body).get("items") or [])
        items: list[dict[str, Any]] = []
        for ns in namespaces:
            body = self.custom.list_namespaced_custom_object(
                GROUP, VERSION, ns, "namespacepolicies", resource_version="0"
            )
            items += cast(dict[str, Any], body).get("items") or []
        return items

    def patch_policy_status(self, namespace: str, name: str, patch: dict[str, Any]) -> None:
        """Merge-patch a NamespacePolicy's status (the usage roll-up's fields only)."""
        self.custom.patch_namespaced_custom_object_status(
            GROUP, VERSION, namespace, "namespacepolicies", name, patch
        )

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
        try:
            response = self.custom.replace_namespaced_custom_object_status(
                GROUP, VERSION, namespace, "sessions", name, body, _preload_content=False
            )
            result = cast(dict[str, Any], json.loads(cast(Any, response).data))
        except ApiException as exc:
            if exc.status == 409:
                raise ConflictError(name) from exc
            if exc.status == 404:
                raise GoneError(name) from exc
            raise
        return result

    def list_sessions(self, namespace: str) -> list[dict[str, Any]]:
        """Every Session in a namespace (retention runs rarely; one list per namespace)."""
        response = self.custom.list_namespaced_custom_object(
            GROUP, VERSION, namespace, "sessions", _preload_content=False
        )
        items: list[dict[str, Any]] = json.loads(cast(Any, response).data).get("items") or []
        return items

    def delete_session(self, namespace: str, name: str, uid: str) -> bool:
        """Delete a Session only if it is still the one with ``uid`` (a recreated Session of
        the same name is not the one that expired); False when it is already gone."""
        try:
            self.custom.delete_namespaced_custom_object(
                GROUP,
                VERSION,
                namespace,
                "sessions",
                name,
                body={"preconditions": {"uid": uid}, "propagationPolicy": "Background"},
            )
        except ApiException as exc:
            if exc.status in (404, 409):
                return False
            raise
        return True

    def delete_job(self, namespace: str, name: str) -> bool:
        """Delete a Job and, in the background, its pods; False when it was already gone."""
        try:
            self.batch.delete_namespaced_job(
                name, namespace, propagation_policy="Background", _preload_content=False
            )
        except ApiException as exc:
            if exc.status == 404:
                return False
            raise
        return True

    def list_policies(self, namespace: str | None = None) -> list[dict[str, Any]]:
        """The NamespacePolicies of one namespace, or of all (few: one per team namespace)."""
        if namespace is None:
            response = self.custom.list_cluster_custom_object(
                GROUP, VERSION, "namespacepolicies", _preload_content=False
            )
        else:
            response = self.custom.list_namespaced_custom_object(
                GROUP, VERSION, namespace, "namespacepolicies", _preload_content=False
            )
        items: list[dict[str, Any]] = json.loads(cast(Any, response).data).get("items") or []
        return items

    def read_secret_key(self, namespace: str, name: str, key: str) -> bytes | None:
        """One data key of a Secret, decoded; None when the Secret or the key is missing."""
        try:
            secret = self.core.read_namespaced_secret(name, namespace)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        value = (secret.data or {}).get(key)
        return base64.b64decode(value) if value else None
