"""``python -m ambient.webhooks.admission``: serve the admission webhook over TLS."""

from __future__ import annotations

import logging
import sys

import uvicorn

from ambient.operator import audit
from ambient.webhooks.admission.app import create_app, start_cache
from ambient.webhooks.admission.cache import PolicyCache
from ambient.webhooks.admission.settings import AdmissionSettings


def main() -> int:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    audit.configure()
    settings = AdmissionSettings()
    for path in (settings.cert_file, settings.key_file):
        if not path.is_file():
            sys.stderr.write(
                f"TLS file {path} is missing: the API server only calls webhooks over HTTPS. "
                "Set AMBIENT_ADMISSION_CERT_FILE and AMBIENT_ADMISSION_KEY_FILE.\n"
            )
            return 2
    cache = PolicyCache()
    start_cache(cache)
    uvicorn.run(
        create_app(settings, cache),
        host=settings.host,
        port=settings.port,
        ssl_certfile=str(settings.cert_file),
        ssl_keyfile=str(settings.key_file),
        log_level="warning",
        access_log=False,
        loop="uvloop",
        http="httptools",
        # The API server keeps its connections to the webhook; closing them after 5 idle
        # seconds (uvicorn's default) would make a TLS handshake part of a Session write.
        timeout_keep_alive=60,
        proxy_headers=False,  # answers depend on the review alone, never on the peer
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
