"""The ingress's calls to the Kubernetes API, as thin adapters over ``common.kube``.

Per delivery, on the event loop (``AsyncSessionsApi``, over ``common.kube.aio``): cached
Secret reads for signing secrets and the Session create (409: read back for the ownership
check). In a thread or a CLI (``SessionsApi``, over ``common.kube.client``): the same two
calls for replay, the NamespacePolicy watch feeding the key index, the policy patch the key
CLI makes, and who the caller is. Errors are ``common.kube.errors``: the app answers 503
to ``UnavailableError`` and passes on a ``RefusedError``.
"""

from __future__ import annotations

import asyncio
import base64
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from ambient.common.kube import errors
from ambient.common.kube.aio import AsyncKube, dumps
from ambient.common.kube.client import Kube, secret_path
from ambient.common.kube.config import Configuration
from ambient.crds.models import GROUP, VERSION
from ambient.webhooks.policy_watch import watch_policies

from .keyindex import KeyIndex, KeyIndexSink

REQUEST_TIMEOUT = (3.0, 10.0)  # connect, read: well inside GitHub's 10 s
FIELD_MANAGER = "ambient-ingress"  # who wrote a Session, in its managedFields
_CREATE_QUERY = f"?fieldManager={FIELD_MANAGER}"


def _sessions(namespace: str) -> str:
    return f"/apis/{GROUP}/{VERSION}/namespaces/{quote(namespace)}/sessions"


def _secret(namespace: str, name: str) -> str:
    # InvalidNameError for a name no Secret can have: nothing is read (fail closed).
    return secret_path(namespace, name)


def _decode(secret: dict[str, Any]) -> dict[str, str]:
    raw = secret.get("data") or {}
    return {k: base64.b64decode(v).decode().strip() for k, v in raw.items()}


class SessionsApi:
    """The synchronous calls: the NamespacePolicy watch (a thread), the key and deliveries
    CLIs. The server's per-delivery calls go through AsyncSessionsApi."""

    def __init__(
        self, connections: int = 2, secret_ttl: float = 10.0, kubeconfig: str | None = None
    ) -> None:
        self.kube = Kube(connections, kubeconfig, timeout=REQUEST_TIMEOUT)
        self._secret_ttl = secret_ttl
        self._secrets: dict[tuple[str, str], tuple[float, dict[str, str] | None]] = {}
        self._lock = threading.Lock()

    @property
    def configuration(self) -> Configuration:
        """The loaded configuration, shared with AsyncSessionsApi."""
        return self.kube.configuration

    # --- sessions -------------------------------------------------------------------------

    def create_session(self, manifest: dict[str, Any]) -> dict[str, Any] | None:
        """Create; None when created, else the existing Session of that name (409)."""
        meta = manifest["metadata"]
        path = _sessions(meta["namespace"])
        try:
            self.kube.call("POST", path, manifest, query={"fieldManager": FIELD_MANAGER})
            return None
        except errors.ConflictError:
            return self.kube.call("GET", f"{path}/{quote(meta['name'])}")

    # --- signing secrets ------------------------------------------------------------------

    def signing_secret(self, namespace: str, secret: str, source: str) -> str | None:
        """The source's signing secret from the named Secret, cached for a few seconds."""
        now = time.monotonic()
        with self._lock:
            cached = self._secrets.get((namespace, secret))
        if cached is None or cached[0] < now:
            try:
                data: dict[str, str] | None = _decode(
                    self.kube.call("GET", _secret(namespace, secret))
                )
            except errors.NotFoundError:
                data = None
            with self._lock:
                self._secrets[(namespace, secret)] = (now + self._secret_ttl, data)
        else:
            data = cached[1]
        return (data or {}).get(source) or None

    # --- the NamespacePolicy watch --------------------------------------------------------

    def watch_policies(self, index: KeyIndex, stop: threading.Event) -> None:
        """List then watch NamespacePolicies into the index, re-listing after any failure."""
        watch_policies(self.kube, KeyIndexSink(index), stop)

    # --- key management -------------------------------------------------------------------

    def read_policy(self, namespace: str) -> dict[str, Any] | None:
        """The namespace's NamespacePolicy (the first one), or None."""
        path = f"/apis/{GROUP}/{VERSION}/namespaces/{quote(namespace)}/namespacepolicies"
        items = self.kube.call("GET", path).get("items") or []
        return dict(items[0]) if items else None

    def set_key_hashes(self, namespace: str, name: str, source: str, value: Any, rv: str) -> None:
        """Replace apiKeys.<source>, guarded by resourceVersion against concurrent edits."""
        patch = {
            "metadata": {"resourceVersion": rv},
            "spec": {"webhookAuth": {"apiKeys": {source: value}}},
        }
        path = f"/apis/{GROUP}/{VERSION}/namespaces/{quote(namespace)}/namespacepolicies"
        self.kube.call(
            "PATCH", f"{path}/{quote(name)}", patch, content_type="application/merge-patch+json"
        )

    # --- the deliveries CLI ---------------------------------------------------------------

    def whoami(self) -> str:
        """The username the API server authenticates these credentials as, recorded as who
        replayed a delivery."""
        return self.kube.whoami()


class AsyncSessionsApi:
    """The two calls a delivery makes (Session create, signing-Secret read), on the app's
    event loop, over ``common.kube.aio``: the manifest serialised once, the created object's
    body read but not parsed, a burst of Secret reads after the cache expires made once."""

    def __init__(
        self,
        configuration: Configuration,
        connections: int = 64,
        secret_ttl: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.kube = AsyncKube(
            configuration,
            connections=connections,
            timeout=REQUEST_TIMEOUT,
            user_agent=FIELD_MANAGER,
        )
        self._secret_ttl = secret_ttl
        self._clock = clock
        self._secrets: dict[tuple[str, str], tuple[float, dict[str, str] | None]] = {}
        self._reads: dict[tuple[str, str], asyncio.Future[dict[str, str] | None]] = {}

    async def aclose(self) -> None:
        await self.kube.aclose()

    # --- key use --------------------------------------------------------------------------

    async def record_key_use(self, namespace: str, policy: str, prefix: str, stamp: str) -> None:
        """status.keysLastUsed.<prefix> of the namespace's NamespacePolicy (merge patch: the
        other keys' entries stay)."""
        path = (
            f"/apis/{GROUP}/{VERSION}/namespaces/{quote(namespace)}"
            f"/namespacepolicies/{quote(policy)}/status"
        )
        patch = {"status": {"keysLastUsed": {prefix: stamp}}}
        await self.kube.send("PATCH", path, patch, "application/merge-patch+json")

    # --- sessions -------------------------------------------------------------------------

    async def create_session(self, manifest: dict[str, Any]) -> dict[str, Any] | None:
        """Create; None when created, else the existing Session of that name (409)."""
        meta = manifest["metadata"]
        path = _sessions(meta["namespace"])
        # The hot path: one request, the answer's status checked, its body never parsed.
        status, body = await self.kube.request("POST", path + _CREATE_QUERY, dumps(manifest))
        if status < 300:
            return None
        if status != 409:
            raise errors.from_status(status, body)
        return await self.kube.call("GET", f"{path}/{quote(meta['name'])}")

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
        try:
            return _decode(await self.kube.call("GET", _secret(namespace, name)))
        except errors.NotFoundError:
            return None
