"""python -m ambient.webhooks.ingress: serve the ingress with uvicorn (what the chart runs)."""

from __future__ import annotations

import threading

import uvicorn

from ambient.common import logs
from ambient.common.store.s3 import S3Store, StoreSettings
from ambient.webhooks import exporting

from .app import create_app
from .delivery_log import DeliveryLog
from .keyindex import KeyIndex
from .keyusage import KeyUsage
from .sessions_api import AsyncSessionsApi, SessionsApi
from .settings import IngressSettings

# One store call for a large payload, then one retry: the answer (503, and the sender
# retries) must come well inside GitHub's 10 s.
PAYLOAD_STORE_TIMEOUT_SECONDS = 3.0


def main() -> None:
    settings = IngressSettings()
    logs.configure("ingress", settings.log_format, settings.log_level)
    index = KeyIndex()
    kube = SessionsApi(connections=2)  # the policy watch only
    backend = AsyncSessionsApi(
        kube.configuration, settings.api_connections, settings.secret_ttl_seconds
    )
    stop = threading.Event()

    def start_watch() -> None:
        threading.Thread(
            target=kube.watch_policies, args=(index, stop), name="policy-watch", daemon=True
        ).start()

    # With a store (AMBIENT_STORE_*): payloads too large for a Session go there, and, with
    # the delivery log on, deliveries are exported and the requests of refused ones kept.
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
    export = exporting.from_environment(settings.audit_flush_seconds)
    delivery_log = None
    if export is not None and settings.delivery_log:
        delivery_log = DeliveryLog(
            export,
            keep_ignored=settings.keep_ignored_requests,
            store_timeout=settings.store_timeout_seconds,
            keep_per_second=settings.keep_requests_per_second,
            keep_burst=settings.keep_requests_burst,
            keep_unverified_bytes=settings.max_body_bytes,
        )
        export.start()

    async def record_key_use(namespace: str, prefix: str, stamp: str) -> None:
        policy = index.policy_name(namespace)
        if policy:
            await backend.record_key_use(namespace, policy, prefix, stamp)

    app = create_app(
        index,
        backend,
        settings=settings,
        lifespan_hook=start_watch,
        delivery_log=delivery_log,
        store=store,
        store_prefix=store_settings.prefix,
        key_usage=KeyUsage(record_key_use),
    )
    try:
        uvicorn.run(
            app,
            host=settings.host,
            port=settings.port,
            log_level=settings.log_level.lower(),
            log_config=None,  # uvicorn's lines go through the JSON handler too
            access_log=False,  # paths carry keys: never log them
            timeout_keep_alive=30,
            loop="uvloop",
            http="httptools",
        )
    finally:
        stop.set()
        if delivery_log is not None and export is not None:
            export.stop()  # what is buffered is written out


if __name__ == "__main__":
    main()
