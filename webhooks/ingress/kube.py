"""The one module of the ingress that talks to the Kubernetes API.

Thin: the NamespacePolicy watch feeding the key index and the policy patch the key CLI
uses (the synchronous client, in a thread), and per delivery, on the event loop, cached
Secret reads for signing secrets and the Session create (409 → read back for the
ownership check). API errors are mapped to KubeUnavailableError (retry later) or
KubeRefusedError.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any, cast

import aiohttp
import orjson
import urllib3
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from ambient.common.kube.client import secret_path
from ambient.common.kube.client import ssl_context as _ssl_context
from ambient.crds.models import GROUP, VERSION
from ambient.webhooks.policy_watch import watch_policies

from .errors import KubeRefusedError, KubeUnavailableError
from .keyindex import KeyIndex, KeyIndexSink

log = logging.getLogger("ambient.ingress.kube")
REQUEST_TIMEOUT = (3.0, 10.0)  # connect, read: well inside GitHub's 10 s
FIELD_MANAGER = "ambient-ingress"  # who wrote a Session, in its managedFields


def _message(exc: ApiException) -> str:
    try:
        return str(json.loads(exc.body or "{}").get("message", exc.reason))
    except (TypeError, ValueError, AttributeError):
        return str(exc.reason)


class IngressKube:
    """The synchronous client: the NamespacePolicy watch (a thread), the key and
    deliveries CLIs. The server's per-delivery calls go through AsyncIngressKube."""

    def __init__(self, connections: int = 64, secret_ttl: float = 10.0) -> None:
        try:
            config.load_incluster_config()
        except config.ConfigException:
            config.load_kube_config()
        cfg = client.Configuration.get_default_copy()
        cfg.connection_pool_maxsize = connections
        cfg.retries = 1  # answer 503 quickly when the API server is gone; senders retry
        self.configuration = cfg
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
            response = self.custom.create_namespaced_custom_object(
                GROUP,
                VERSION,
                ns,
                "sessions",
                manifest,
                _preload_content=False,
                _request_timeout=REQUEST_TIMEOUT,
            )
            response.read()  # to the end, so the connection goes back to the pool
            response.release_conn()
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
        secret_path(namespace, name)  # InvalidNameError before a request is built from it
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

    # --- the deliveries CLI ---------------------------------------------------------------

    def whoami(self) -> str:
        """The username the API server authenticates these credentials as (SelfSubjectReview),
        recorded as who replayed a delivery."""
        review = client.AuthenticationV1Api(self._api).create_self_subject_review(
            {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}
        )
        return str(review.status.user_info.username)


class AsyncIngressKube:
    """The two calls a delivery makes (Session create, signing-Secret read), on the app's
    event loop: one aiohttp pool of kept-alive TLS connections to the API server, the
    manifest serialised once (orjson), and the created object's body read but not parsed.

    Threads around the synchronous client cost a GIL hand-off, a deep copy
    (``sanitize_for_serialization``) and a stdlib ``json.dumps`` per create, and with
    ``_preload_content=False`` an unread response never returned its connection to the
    pool, so every create paid a new TLS handshake.
    """

    def __init__(
        self,
        configuration: client.Configuration,
        connections: int = 64,
        secret_ttl: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._cfg = configuration
        self._base = configuration.host.rstrip("/")
        self._ssl = _ssl_context(configuration)
        self._connections = connections
        self._secret_ttl = secret_ttl
        self._clock = clock
        self._http: aiohttp.ClientSession | None = None
        self._secrets: dict[tuple[str, str], tuple[float, dict[str, str] | None]] = {}
        self._reads: dict[tuple[str, str], asyncio.Future[dict[str, str] | None]] = {}

    def _session(self) -> aiohttp.ClientSession:
        # Made on first use: an aiohttp session belongs to the loop it was made on.
        if self._http is None or self._http.closed:
            self._http = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(
                    limit=self._connections,
                    ssl=self._ssl if self._ssl is not None else False,
                    keepalive_timeout=30,
                ),
                timeout=aiohttp.ClientTimeout(
                    sock_connect=REQUEST_TIMEOUT[0], sock_read=REQUEST_TIMEOUT[1]
                ),
                headers={"User-Agent": FIELD_MANAGER},
            )
        return self._http

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.close()

    def _headers(self) -> dict[str, str]:
        headers = {"Accept": "application/json", "Content-Type": "application/json"}
        # Calls the configuration's refresh hook: in-cluster tokens are re-read as they rotate.
        token = self._cfg.get_api_key_with_prefix("authorization")
        if token:
            headers["Authorization"] = token
        return headers

    async def _request(
        self, method: str, path: str, body: bytes | None = None
    ) -> tuple[int, bytes]:
        """(status, body); a connection dropped before an answer is tried once more (every
        call here is idempotent: creates have deterministic names), then 503."""
        for attempt in (1, 2):
            try:
                async with self._session().request(
                    method,
                    self._base + path,
                    data=body,
                    headers=self._headers(),
                    server_hostname=self._cfg.tls_server_name or None,  # kubeconfig's
                ) as rsp:
                    return rsp.status, await rsp.read()
            except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError) as exc:
                if attempt == 2:
                    raise KubeUnavailableError(
                        f"the API server cannot be reached: {type(exc).__name__}"
                    ) from exc
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                raise KubeUnavailableError(
                    f"the API server cannot be reached: {type(exc).__name__}"
                ) from exc
        raise AssertionError("unreachable")

    # --- sessions -------------------------------------------------------------------------

    async def create_session(self, manifest: dict[str, Any]) -> dict[str, Any] | None:
        """Create; None when created, else the existing Session of that name (409)."""
        ns, name = manifest["metadata"]["namespace"], manifest["metadata"]["name"]
        path = f"/apis/{GROUP}/{VERSION}/namespaces/{ns}/sessions"
        query = f"?fieldManager={FIELD_MANAGER}"
        status, body = await self._request("POST", path + query, _dumps(manifest))
        if 200 <= status < 300:
            return None
        if status != 409:
            raise _refusal(status, body)
        status, body = await self._request("GET", f"{path}/{name}")
        if status != 200:
            raise _refusal(status, body)
        return cast(dict[str, Any], json.loads(body))

    # --- signing secrets ------------------------------------------------------------------

    async def signing_secret(self, namespace: str, secret: str, source: str) -> str | None:
        """The source's signing secret from the named Secret, cached for a few seconds; a
        burst of deliveries after expiry makes one read, not one each."""
        key = (namespace, secret)
        cached = self._secrets.get(key)
        if cached is not None and cached[0] >= self._clock():
            data = cached[1]
        else:
            pending = self._reads.get(key)
            if pending is None:
                pending = asyncio.ensure_future(self._read_secret(namespace, secret))
                self._reads[key] = pending
                pending.add_done_callback(lambda _: self._reads.pop(key, None))
            data = await asyncio.shield(pending)
            self._secrets[key] = (self._clock() + self._secret_ttl, data)
        return (data or {}).get(source) or None

    async def _read_secret(self, namespace: str, name: str) -> dict[str, str] | None:
        # InvalidNameError for a name no Secret can have: nothing is read (fail closed).
        status, body = await self._request("GET", secret_path(namespace, name))
        if status == 404:
            return None
        if status != 200:
            raise _refusal(status, body)
        raw = json.loads(body).get("data") or {}
        return {k: base64.b64decode(v).decode().strip() for k, v in raw.items()}


def _dumps(manifest: dict[str, Any]) -> bytes:
    try:
        return orjson.dumps(manifest)
    except TypeError:  # an integer beyond 64 bits: the standard library writes those
        return json.dumps(manifest).encode()


def _refusal(status: int, body: bytes) -> Exception:
    if status == 429 or status >= 500:
        return KubeUnavailableError(f"the API server answered {status}")
    try:
        message = str(json.loads(body).get("message") or status)
    except (ValueError, AttributeError):
        message = f"the API server answered {status}"
    return KubeRefusedError(status, message)
