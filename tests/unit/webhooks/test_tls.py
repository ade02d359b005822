"""The certificate reloader (webhooks/tls.py) without a network: contexts built from
throwaway pairs, the SNI callback called as OpenSSL would (served over real TLS:
tests/integration/test_webhooks_tls_reload.py)."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import ssl
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ambient.webhooks.tls import CertificateReloader, tls_server


def _pair(directory: Path, name: str = "a") -> tuple[Path, Path]:
    """A self-signed certificate and its key under ``directory``/``name``.{crt,key}."""
    now = dt.datetime.now(dt.UTC)
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / f"{name}.crt", directory / f"{name}.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


def _context(cert_file: Path, key_file: Path) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    return context


def _reloader(tmp_path: Path) -> tuple[CertificateReloader, ssl.SSLContext, Path, Path]:
    cert_file, key_file = _pair(tmp_path, "live")
    listening = _context(cert_file, key_file)
    reloader = CertificateReloader(
        listening, cert_file, key_file, lambda: _context(cert_file, key_file)
    )
    return reloader, listening, cert_file, key_file


def _renew(tmp_path: Path, cert_file: Path, key_file: Path) -> None:
    new_cert, new_key = _pair(tmp_path, "renewed")
    cert_file.write_bytes(new_cert.read_bytes())
    key_file.write_bytes(new_key.read_bytes())


class _Connection:
    """What the SNI callback is handed: an SSLObject whose context may be replaced."""

    def __init__(self, context: ssl.SSLContext) -> None:
        self.context = context


def test_unchanged_files_keep_the_listening_context(tmp_path: Path) -> None:
    reloader, listening, _, _ = _reloader(tmp_path)
    assert listening.sni_callback is not None  # every handshake passes through it
    assert reloader.reload_if_changed() is False
    assert reloader.current is listening
    connection = _Connection(listening)
    reloader._choose(connection, None, listening)
    assert connection.context is listening


def test_renewed_files_put_a_new_context_in_service(tmp_path: Path) -> None:
    reloader, listening, cert_file, key_file = _reloader(tmp_path)
    _renew(tmp_path, cert_file, key_file)
    assert reloader.reload_if_changed() is True
    assert reloader.current is not listening
    connection = _Connection(listening)
    reloader._choose(connection, "webhook.example", listening)
    assert connection.context is reloader.current  # new handshakes get the new pair
    assert reloader.reload_if_changed() is False  # once


def test_a_half_written_pair_keeps_the_one_in_service(tmp_path: Path) -> None:
    reloader, listening, cert_file, key_file = _reloader(tmp_path)
    other_cert, _ = _pair(tmp_path, "other")
    cert_file.write_bytes(other_cert.read_bytes())  # the key is still the old one
    with pytest.raises(ssl.SSLError):
        reloader.reload_if_changed()
    assert reloader.current is listening
    _renew(tmp_path, cert_file, key_file)  # the rotation completes: taken at the next check
    assert reloader.reload_if_changed() is True


def test_the_loop_logs_a_bad_pair_without_its_content_and_keeps_checking(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    reloader, listening, cert_file, key_file = _reloader(tmp_path)
    other_cert, _ = _pair(tmp_path, "other")
    cert_file.write_bytes(other_cert.read_bytes())
    secret = key_file.read_text()

    async def run_for_a_moment() -> None:
        task = asyncio.ensure_future(reloader.run(0.01))
        await asyncio.sleep(0.05)
        _renew(tmp_path, cert_file, key_file)
        await asyncio.sleep(0.05)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    with caplog.at_level(logging.INFO, logger="ambient.webhooks.tls"):
        asyncio.run(run_for_a_moment())
    assert "kept the current TLS certificate" in caplog.text
    assert "serving the renewed TLS certificate" in caplog.text
    assert "PRIVATE KEY" not in caplog.text and secret not in caplog.text
    assert reloader.current is not listening


def test_the_server_and_its_reloader_share_the_listening_context(tmp_path: Path) -> None:
    cert_file, key_file = _pair(tmp_path, "live")
    server, reloader = tls_server(object(), cert_file, key_file, host="127.0.0.1", port=0)
    assert server.config.ssl is reloader.current
    assert reloader.current.sni_callback is not None
    _renew(tmp_path, cert_file, key_file)
    assert reloader.reload_if_changed() is True
