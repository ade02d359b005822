"""The runner's view of its own Session through the Kubernetes REST API.

Plain HTTPS with the ServiceAccount token (the standard library only): the runner image
needs no Kubernetes client, and botocore's and the Kubernetes client's pins of
python-dateutil cannot be installed together. Every write is a status update guarded by
resourceVersion; on 409 the Session is read again and the change re-applied, so the
operator's concurrent writes are never lost.
"""

from __future__ import annotations

import copy
import json
import os
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ambient.crds.models import GROUP, VERSION
from ambient.crds.patches import status_patch
from ambient.runners.sdk.contract import ContractError, HistoryFullError

SA_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
MAX_CONFLICTS = 10
HISTORY_WAIT_SECONDS = float(os.environ.get("AMBIENT_HISTORY_WAIT_SECONDS", "600"))
"""How long an append waits for the operator to archive a full history window."""
# Two writers racing for the window's last places: the API server's maxItems answer.
_WINDOW_FULL = "status.history: Too many"


class ApiError(Exception):
    """The API server refused a request; ``status`` is its HTTP code."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status


@dataclass(frozen=True)
class Connection:
    """Where the API server is and how to authenticate to it."""

    server: str
    token_file: Path
    ca_file: Path | None

    @classmethod
    def from_env(cls) -> Connection:
        """In a pod: the projected token and the service env vars. Elsewhere (tests, local
        runs): AMBIENT_API_SERVER, AMBIENT_API_TOKEN_FILE, AMBIENT_API_CA_FILE."""
        server = os.environ.get("AMBIENT_API_SERVER")
        if server:
            ca = os.environ.get("AMBIENT_API_CA_FILE")
            return cls(
                server.rstrip("/"),
                Path(os.environ.get("AMBIENT_API_TOKEN_FILE", str(SA_DIR / "token"))),
                Path(ca) if ca else None,
            )
        host = os.environ.get("KUBERNETES_SERVICE_HOST")
        port = os.environ.get("KUBERNETES_SERVICE_PORT", "443")
        if not host:
            raise ContractError(
                "no API server: run in a pod with a ServiceAccount token, or set "
                "AMBIENT_API_SERVER and AMBIENT_API_TOKEN_FILE"
            )
        if ":" in host:
            host = f"[{host}]"
        return cls(f"https://{host}:{port}", SA_DIR / "token", SA_DIR / "ca.crt")


class StatusClient:
    """Reads and updates one Session's status."""

    def __init__(self, conn: Connection, namespace: str, name: str) -> None:
        self.conn = conn
        self.path = f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/sessions/{name}"
        self.ssl = ssl.create_default_context(cafile=str(conn.ca_file) if conn.ca_file else None)

    def _request(self, method: str, path: str, body: Any = None) -> Any:
        # The projected token rotates; read it on every request.
        token = self.conn.token_file.read_text().strip()
        kind = "application/json-patch+json" if method == "PATCH" else "application/json"
        req = urllib.request.Request(  # noqa: S310 - the URL is the API server's
            self.conn.server + path,
            method=method,
            data=json.dumps(body).encode() if body is not None else None,
            headers={
                "Authorization": f"Bearer {token}",
                "Content-Type": kind,
                "Accept": "application/json",
            },
        )
        try:
            with urllib.request.urlopen(req, context=self.ssl, timeout=30) as resp:  # noqa: S310
                return json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            try:
                message = json.loads(exc.read()).get("message", exc.reason)
            except ValueError:
                message = str(exc.reason)
            raise ApiError(exc.code, str(message)) from exc

    def get(self) -> dict[str, Any]:
        """The Session as stored now."""
        result: dict[str, Any] = self._request("GET", self.path)
        return result

    def update(
        self,
        change: Callable[[dict[str, Any]], Any],
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> Any:
        """Apply ``change`` to the latest status and write what changed as a JSON patch
        guarded by the resourceVersion it read (``ambient.crds.patches``: the entries it
        appends, not the whole history, and a 409 when another writer came first).

        ``change`` edits the status dict in place and may raise to refuse (then nothing is
        written). Returns what ``change`` returned on the attempt that was stored. While
        the history window is full (HistoryFullError, or the API server's maxItems 422
        when another writer took the last place) it waits for the operator to archive
        and tries again, for up to HISTORY_WAIT_SECONDS: the entry is delayed, not lost.
        """
        conflicts = 0
        deadline = clock() + HISTORY_WAIT_SECONDS
        delay = 0.5
        while conflicts < MAX_CONFLICTS:
            session = self.get()
            status = session.setdefault("status", {})
            stored = copy.deepcopy(status)
            try:
                result = change(status)
            except HistoryFullError:
                if clock() >= deadline:
                    raise
                sleep(delay)
                delay = min(delay * 2, 10.0)
                continue
            body = status_patch(session["metadata"]["resourceVersion"], stored, status)
            try:
                self._request("PATCH", self.path + "/status", body)
            except ApiError as exc:
                if exc.status == 409:
                    conflicts += 1
                    continue
                if exc.status == 422 and _WINDOW_FULL in str(exc) and clock() < deadline:
                    sleep(delay)
                    delay = min(delay * 2, 10.0)
                    continue
                raise
            return result
        raise ApiError(409, f"the Session changed {MAX_CONFLICTS} times while writing; giving up")
