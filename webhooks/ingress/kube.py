"""The one module of the ingress that talks to the Kubernetes API.

Thin: a NamespacePolicy watch feeding the key index, cached Secret reads for signing
secrets, Session create (409 → read back for the ownership check), and the policy patch
the key CLI uses. API errors are mapped to KubeUnavailableError (retry later) or KubeRefusedError.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
from typing import Any, cast

import urllib3
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from ambient.crds.models import GROUP, VERSION
from ambient.webhooks.policy_watch import watch_policies

from .errors import KubeRefusedError, KubeUnavailableError
from .keyindex import KeyIndex, KeyIndexSink

log = logging.getLogger("ambient.ingress.kube")
REQUEST_TIMEOUT = (3.0, 10.0)  # connect, read: well inside GitHub's 10 s


def _message(exc: ApiException) -> str:
    try:
        return str(json.loads(exc.body or "{}").get("message", exc.reason))
    except (TypeError, ValueError, AttributeError):
        return str(exc.reason)


class IngressKube:
    """Kubernetes access for the ingress and the key CLI."""

    def __init__(self, connections: int = 64, secret_ttl: float = 10.0) -> None:
        try:
            config.load_incluster_config()
        except config.ConfigException:
            config.load_kube_config()
        cfg = client.Configuration.get_default_copy()
        cfg.connection_pool_maxsize = connections
        cfg.retries = 1  # answer 503 quickly when the API server is gone; senders retry
        self._api = client.ApiClient(cfg)
        self.custom = client.CustomObjectsApi(self._api)
        self.core = client.CoreV1Api(self._api)
        self._secret_ttl = secret_ttl
        self._secrets: dict[tuple[str, str], tuple[float, dict[str, str] | None]] = {}
        self._lock = threading.Lock()

    # --- sessions -------------------------------------------------------------------------

    def create_session(self, manifest: dict[str, Any]) -> dict[str, Any] | None:
        """Create; None when created, else the existing Session of that name (409)."""
        ns = manifest["metadata"]["namespace"]
        try:
            self.custom.create_namespaced_custom_object(
                GROUP,
                VERSION,
                ns,
                "sessions",
                manifest,
                _preload_content=False,
                _request_timeout=REQUEST_TIMEOUT,
            )
            return None
        except ApiException as exc:
            if exc.status != 409:
                raise self._map(exc) from exc
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise KubeUnavailableError(
                f"the API server cannot be reached: {type(exc).__name__}"
            ) from exc
        try:
            existing = self.custom.get_namespaced_custom_object(
                GROUP,
                VERSION,
                ns,
                "sessions",
                manifest["metadata"]["name"],
                _request_timeout=REQUEST_TIMEOUT,
            )
        except ApiException as exc:
            raise self._map(exc) from exc
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise KubeUnavailableError(
                f"the API server cannot be reached: {type(exc).__name__}"
            ) from exc
        return cast(dict[str, Any], existing)

    @staticmethod
    def _map(exc: ApiException) -> Exception:
        if exc.status in (None, 0, 429) or (exc.status or 0) >= 500:
            return KubeUnavailableError(f"the API server answered {exc.status}")
        return KubeRefusedError(int(exc.status or 500), _message(exc))

    # --- signing secrets ------------------------------------------------------------------

    def signing_secret(self, namespace: str, secret: str, source: str) -> str | None:
        """The source's signing secret from the named Secret, cached for a few seconds."""
        now = time.monotonic()
        with self._lock:
            cached = self._secrets.get((namespace, secret))
        if cached is None or cached[0] < now:
            data = self._read_secret(namespace, secret)
            with self._lock:
                self._secrets[(namespace, secret)] = (now + self._secret_ttl, data)
        else:
            data = cached[1]
        return (data or {}).get(source) or None

    def _read_secret(self, namespace: str, name: str) -> dict[str, str] | None:
        try:
            obj = self.core.read_namespaced_secret(
                name, namespace, _request_timeout=REQUEST_TIMEOUT
            )
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise self._map(exc) from exc
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise KubeUnavailableError(
                f"the API server cannot be reached: {type(exc).__name__}"
            ) from exc
        raw = obj.data or {}
        return {k: base64.b64decode(v).decode().strip() for k, v in raw.items()}

    # --- the NamespacePolicy watch --------------------------------------------------------

    def watch_policies(self, index: KeyIndex, stop: threading.Event) -> None:
        """List then watch NamespacePolicies into the index, re-listing after any failure."""
        watch_policies(self.custom, KeyIndexSink(index), stop, request_timeout=REQUEST_TIMEOUT[1])

    # --- key management -------------------------------------------------------------------

    def read_policy(self, namespace: str) -> dict[str, Any] | None:
        """The namespace's NamespacePolicy (the first one), or None."""
        listing = cast(
            dict[str, Any],
            self.custom.list_namespaced_custom_object(
                GROUP, VERSION, namespace, "namespacepolicies"
            ),
        )
        items = listing["items"]
        return cast(dict[str, Any], items[0]) if items else None

    def set_key_hashes(self, namespace: str, name: str, source: str, value: Any, rv: str) -> None:
        """Replace apiKeys.<source>, guarded by resourceVersion against concurrent edits."""
        patch = {
            "metadata": {"resourceVersion": rv},
            "spec": {"webhookAuth": {"apiKeys": {source: value}}},
        }
        self.custom.patch_namespaced_custom_object(
            GROUP, VERSION, namespace, "namespacepolicies", name, patch
        )
