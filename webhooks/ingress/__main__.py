"""python -m ambient.webhooks.ingress: serve the ingress with uvicorn (what the chart runs)."""

from __future__ import annotations

import logging
import threading

import uvicorn

from ambient.operator.objectstore import S3Store, StoreSettings

from .app import create_app
from .keyindex import KeyIndex
from .kube import IngressKube
from .settings import Settings

# One store call for a large payload, then one retry: the answer (503, and the sender
# retries) must come well inside GitHub's 10 s.
PAYLOAD_STORE_TIMEOUT_SECONDS = 3.0


def main() -> None:
    settings = Settings()
    logging.basicConfig(level=settings.log_level, format="%(message)s")
    index = KeyIndex()
    kube = IngressKube(settings.api_connections, settings.secret_ttl_seconds)
    stop = threading.Event()

    def start_watch() -> None:
        threading.Thread(
            target=kube.watch_policies, args=(index, stop), name="policy-watch", daemon=True
        ).start()

    store_settings = StoreSettings()
    store = None
    if store_settings.bucket:
        store = S3Store(
            store_settings.bucket,
            endpoint_url=store_settings.endpoint_url,
            region=store_settings.region,
            max_attempts=2,
            connect_timeout=PAYLOAD_STORE_TIMEOUT_SECONDS,
            read_timeout=PAYLOAD_STORE_TIMEOUT_SECONDS,
        )
    app = create_app(
        index,
        kube,
        settings=settings,
        lifespan_hook=start_watch,
        store=store,
        store_prefix=store_settings.prefix,
    )
    try:
        uvicorn.run(
            app,
            host=settings.host,
            port=settings.port,
            log_level=settings.log_level.lower(),
            access_log=False,  # paths carry keys: never log them
            timeout_keep_alive=30,
        )
    finally:
        stop.set()


if __name__ == "__main__":
    main()
