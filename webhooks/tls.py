"""Serve over TLS with a certificate that is renewed in place.

cert-manager (or an admin rotating the chart's CA) renews the serving certificate by
updating its Secret, and the kubelet swaps the mounted files atomically. uvicorn reads them
once at start-up, so without this a renewed certificate took a pod restart, and a webhook
still presenting the expired one fails every call (with ``failurePolicy: Fail``, every
Session write in the cluster is refused).

The reloader checks the files every few seconds and, when they changed, builds a whole new
SSL context from them. Only a context that loaded cleanly is put in service, by the
listening context's SNI callback, which every handshake passes through (with or without a
server name): new handshakes get the new certificate, open connections keep theirs. The
live context is never mutated, because OpenSSL leaves a context that failed to load a
mismatched pair (a rotation caught half-written) unable to complete any handshake.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Any

import uvicorn
from uvicorn.config import create_ssl_context

log = logging.getLogger(__name__)


class CertificateReloader:
    """Puts a context built from the current files in service whenever they change."""

    def __init__(
        self,
        listening: ssl.SSLContext,
        cert_file: Path,
        key_file: Path,
        make_context: Callable[[], ssl.SSLContext],
    ) -> None:
        self.cert_file = cert_file
        self.key_file = key_file
        self._make_context = make_context
        self.current = listening
        self._loaded = self._fingerprint()
        listening.sni_callback = self._choose

    def _choose(self, connection: Any, _server_name: str | None, context: ssl.SSLContext) -> None:
        if self.current is not context:
            connection.context = self.current

    def _fingerprint(self) -> bytes:
        # The content, not mtime: the kubelet's atomic swap can keep timestamps.
        digest = hashlib.sha256(self.cert_file.read_bytes())
        digest.update(self.key_file.read_bytes())
        return digest.digest()

    def reload_if_changed(self) -> bool:
        """True when a new pair went into service. Raises OSError/ssl.SSLError for files
        that cannot be loaded (the pair in service stays)."""
        fingerprint = self._fingerprint()
        if fingerprint == self._loaded:
            return False
        context = self._make_context()
        # The fingerprint was read first: a swap landing while the context is built differs
        # from it, so it is taken at the next check.
        self.current, self._loaded = context, fingerprint
        log.info("serving the renewed TLS certificate from %s", self.cert_file)
        return True

    async def run(self, interval_seconds: float) -> None:
        """Check every ``interval_seconds`` until cancelled; a bad pair is logged and retried."""
        while True:
            await asyncio.sleep(interval_seconds)
            try:
                self.reload_if_changed()
            except (OSError, ssl.SSLError) as exc:
                # Never the files' content in the log: one of them is a private key.
                log.warning(
                    "kept the current TLS certificate: %s and %s cannot be loaded yet (%s)",
                    self.cert_file,
                    self.key_file,
                    type(exc).__name__,
                )


def tls_server(
    app: Any, cert_file: Path, key_file: Path, **uvicorn_options: Any
) -> tuple[uvicorn.Server, CertificateReloader]:
    """A uvicorn server for ``app`` on the pair, and the reloader bound to its SSL context."""
    config = uvicorn.Config(
        app, ssl_certfile=str(cert_file), ssl_keyfile=str(key_file), **uvicorn_options
    )
    config.load()
    if config.ssl is None:  # load() makes one whenever a certificate is given
        raise RuntimeError("uvicorn made no SSL context for the certificate")

    def make_context() -> ssl.SSLContext:
        return create_ssl_context(
            certfile=cert_file,
            keyfile=key_file,
            password=config.ssl_keyfile_password,
            ssl_version=config.ssl_version,
            cert_reqs=config.ssl_cert_reqs,
            ca_certs=config.ssl_ca_certs,
            ciphers=config.ssl_ciphers,
        )

    return uvicorn.Server(config), CertificateReloader(
        config.ssl, cert_file, key_file, make_context
    )


async def serve_reloading(
    server: uvicorn.Server, reloader: CertificateReloader, interval_seconds: float
) -> None:
    """Serve until the server exits, checking the certificate files alongside."""
    watcher = asyncio.ensure_future(reloader.run(interval_seconds))
    try:
        await server.serve()
    finally:
        watcher.cancel()


def run_tls(
    app: Any, cert_file: Path, key_file: Path, reload_seconds: float, **uvicorn_options: Any
) -> None:
    """Block serving ``app`` over TLS, with uvicorn's own event loop choice and signals."""
    server, reloader = tls_server(app, cert_file, key_file, **uvicorn_options)
    with asyncio.Runner(loop_factory=server.config.get_loop_factory()) as runner:
        runner.run(serve_reloading(server, reloader, reload_seconds))
