"""The ingress composed: a handler over its collaborators, served by the routes.

``create_app`` is what the entry point (``__main__``) and the tests build: the key index,
the Kubernetes backend that creates Sessions, and optionally the store for large payloads
and the delivery log, wired into one ``IngressHandler`` behind ``routes``.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI

from ambient.webhooks.ingress.keyusage import KeyUsage

from .handler import IngressHandler
from .keyindex import KeyIndex
from .pipeline import PayloadStore, SessionCreator
from .routes import make_app
from .settings import IngressSettings

if TYPE_CHECKING:
    from .delivery_log import DeliveryLog


def create_app(
    index: KeyIndex,
    backend: SessionCreator,
    *,
    settings: IngressSettings | None = None,
    clock: Callable[[], float] = time.monotonic,
    lifespan_hook: Callable[[], Any] | None = None,
    executor: ThreadPoolExecutor | None = None,
    delivery_log: DeliveryLog | None = None,
    store: PayloadStore | None = None,
    store_prefix: str = "",
    key_usage: KeyUsage | None = None,
) -> FastAPI:
    """The ingress app around a key index and a Kubernetes backend (injected for tests),
    and the artifact store that takes payloads too large for the Session (optional)."""
    handler = IngressHandler(
        index,
        backend,
        settings=settings,
        clock=clock,
        store=store,
        store_prefix=store_prefix,
        delivery_log=delivery_log,
        executor=executor,
        key_usage=key_usage,
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if lifespan_hook is not None:
            lifespan_hook()
        yield
        await handler.aclose()

    return make_app(handler, lifespan)
