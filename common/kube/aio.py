"""The asynchronous client: JSON over one aiohttp pool, on the caller's event loop.

For servers that call the API server per request (the ingress: a Session create and a
Secret read per delivery). One pool of kept-alive TLS connections, bodies serialised once
(orjson) and, for ``send``, answers read but not parsed. Same configuration (``config``)
and errors (``errors``) as the synchronous ``client``.

Why not threads around the synchronous client: each call would pay a GIL hand-off, and
around the official client also a deep copy and a stdlib ``json.dumps``.
"""

from __future__ import annotations

import json
from typing import Any, cast

import aiohttp
import orjson

from . import errors
from .config import Configuration, authorization, configuration, ssl_context

TIMEOUT = (3.0, 10.0)  # connect, read


class AsyncKube:
    """JSON requests to the API server; ``send`` for the raw answer, ``call`` decoded."""

    def __init__(
        self,
        cfg: Configuration | None = None,
        *,
        connections: int = 64,
        timeout: tuple[float, float] = TIMEOUT,
        user_agent: str = "ambient",
        kubeconfig: str | None = None,
    ) -> None:
        """``cfg`` an already loaded configuration (else loaded now, from ``kubeconfig`` or
        as ``config.configuration`` says); ``timeout`` (connect, read) per request."""
        self._cfg = cfg if cfg is not None else configuration(kubeconfig)
        self._base = self._cfg.host.rstrip("/")
        self._ssl = ssl_context(self._cfg)
        self._connections = connections
        self._timeout = timeout
        self._user_agent = user_agent
        self._http: aiohttp.ClientSession | None = None

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
                    sock_connect=self._timeout[0], sock_read=self._timeout[1]
                ),
                headers={"User-Agent": self._user_agent},
            )
        return self._http

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.close()

    def _headers(self, content_type: str) -> dict[str, str]:
        headers = {"Accept": "application/json", "Content-Type": content_type}
        token = authorization(self._cfg)  # runs the loader's refresh hook
        if token:
            headers["Authorization"] = token
        return headers

    async def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        content_type: str = "application/json",
    ) -> tuple[int, bytes]:
        """(status, body) of any answer; no answer raises UnavailableError. A connection dropped
        before an answer is tried once more (callers send idempotent requests: creates have
        deterministic names)."""
        for attempt in (1, 2):
            try:
                async with self._session().request(
                    method,
                    self._base + path,
                    data=body,
                    headers=self._headers(content_type),
                    server_hostname=self._cfg.tls_server_name or None,  # kubeconfig's
                ) as rsp:
                    return rsp.status, await rsp.read()
            except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError) as exc:
                if attempt == 2:
                    raise errors.unreachable(exc) from exc
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                raise errors.unreachable(exc) from exc
        raise AssertionError("unreachable")

    async def send(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        content_type: str = "application/json",
    ) -> bytes:
        """The answer's body, unparsed; a non-2xx answer raises the taxonomy's error."""
        status, answer = await self.request(
            method, path, None if body is None else dumps(body), content_type
        )
        if status >= 300:
            raise errors.from_status(status, answer)
        return answer

    async def call(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        content_type: str = "application/json",
    ) -> dict[str, Any]:
        """The answer decoded; a non-2xx answer raises the taxonomy's error."""
        answer = await self.send(method, path, body, content_type)
        # The standard library: it reads integers beyond 64 bits, which orjson refuses.
        return cast(dict[str, Any], json.loads(answer) if answer else {})


def dumps(obj: dict[str, Any]) -> bytes:
    """JSON bytes, by orjson (fast) or, for an integer beyond 64 bits, the standard library."""
    try:
        return orjson.dumps(obj)
    except TypeError:
        return json.dumps(obj).encode()
