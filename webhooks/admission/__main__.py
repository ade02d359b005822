"""``python -m ambient.webhooks.admission``: serve the admission webhook over TLS."""

from __future__ import annotations

import ssl
import sys
from pathlib import Path
from typing import Any

from ambient.common import logs
from ambient.common.audit import trail as audit
from ambient.webhooks import exporting
from ambient.webhooks.admission.app import create_app, start_policy_watch
from ambient.webhooks.admission.policy_index import PolicyIndex
from ambient.webhooks.admission.settings import AdmissionSettings
from ambient.webhooks.tls import run_tls


def main() -> int:
    settings = AdmissionSettings()
    logs.configure("admission", settings.log_format)
    audit.configure()
    for path in (settings.cert_file, settings.key_file, *_client_ca(settings)):
        if not path.is_file():
            sys.stderr.write(
                f"TLS file {path} is missing: the API server only calls webhooks over HTTPS. "
                "Set AMBIENT_ADMISSION_CERT_FILE and AMBIENT_ADMISSION_KEY_FILE (and "
                "AMBIENT_ADMISSION_CLIENT_CA_FILE, when set, to an existing CA bundle).\n"
            )
            return 2
    index = PolicyIndex()
    start_policy_watch(index)
    # With a store (AMBIENT_STORE_*), every decision's audit record is exported too.
    export = exporting.from_environment(settings.audit_flush_seconds)
    if export is not None:
        audit.add_sink(export.add)
        export.start()
    try:
        _serve(settings, index, export)
    finally:
        if export is not None:
            export.stop()
    return 0


def _client_ca(settings: AdmissionSettings) -> list[Path]:
    return [] if settings.client_ca_file is None else [settings.client_ca_file]


def client_auth_options(settings: AdmissionSettings) -> dict[str, Any]:
    """uvicorn's TLS options for client certificates: required from the configured CA
    (refused in the handshake otherwise), or none asked for when no CA is set."""
    if settings.client_ca_file is None:
        return {}
    return {"ssl_ca_certs": str(settings.client_ca_file), "ssl_cert_reqs": ssl.CERT_REQUIRED}


def _serve(
    settings: AdmissionSettings, index: PolicyIndex, export: exporting.BackgroundExport | None
) -> None:
    run_tls(
        create_app(settings, index, export=export),
        settings.cert_file,
        settings.key_file,
        settings.cert_reload_seconds,
        host=settings.host,
        port=settings.port,
        log_level="warning",
        log_config=None,  # uvicorn's lines go through the JSON handler too
        access_log=False,
        loop="uvloop",
        http="httptools",
        # The API server keeps its connections to the webhook; closing them after 5 idle
        # seconds (uvicorn's default) would make a TLS handshake part of a Session write.
        timeout_keep_alive=60,
        proxy_headers=False,  # answers depend on the review alone, never on the peer
        **client_auth_options(settings),
    )


if __name__ == "__main__":
    sys.exit(main())
