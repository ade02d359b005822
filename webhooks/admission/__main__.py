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
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
