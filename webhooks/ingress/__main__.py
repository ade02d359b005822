"""python -m ambient.webhooks.ingress: serve the ingress with uvicorn (what the chart runs)."""

from __future__ import annotations

import logging
import threading

import uvicorn

from .app import create_app
from .keyindex import KeyIndex
from .kube import AsyncIngressKube, IngressKube
from .settings import Settings


def main() -> None:
    settings = Settings()
    logging.basicConfig(level=settings.log_level, format="%(message)s")
    index = KeyIndex()
    kube = IngressKube(connections=2)  # the policy watch only
    backend = AsyncIngressKube(
        kube.configuration, settings.api_connections, settings.secret_ttl_seconds
    )
    stop = threading.Event()

    def start_watch() -> None:
        threading.Thread(
            target=kube.watch_policies, args=(index, stop), name="policy-watch", daemon=True
        ).start()

    app = create_app(index, backend, settings=settings, lifespan_hook=start_watch)
    try:
        uvicorn.run(
            app,
            host=settings.host,
            port=settings.port,
            log_level=settings.log_level.lower(),
            access_log=False,  # paths carry keys: never log them
            timeout_keep_alive=30,
            loop="uvloop",
            http="httptools",
        )
    finally:
        stop.set()


if __name__ == "__main__":
    main()
