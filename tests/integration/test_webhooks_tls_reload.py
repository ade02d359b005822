"""A renewed serving certificate is served without a restart (webhooks/tls.py).

A real uvicorn TLS server on loopback; the files are swapped the way the kubelet updates a
mounted Secret (new files, then an atomic rename), and new handshakes are read back.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvloop
from cryptography import x509

from ambient.webhooks.tls import serve_reloading, tls_server

from .conftest import free_port, tls_files

INTERVAL = 0.1


async def _ok(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


def _served_serial(port: int) -> int:
    """The serial number of the certificate a new handshake presents."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # only which certificate is served matters here
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        context.wrap_socket(raw) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der).serial_number


def _serial(cert_file: Path) -> int:
    return x509.load_pem_x509_certificate(cert_file.read_bytes()).serial_number


def _swap(live: Path, cert: Path, key: Path) -> None:
    """Replace both files by rename, as the kubelet's atomic writer does."""
    for source, name in ((cert, "tls.crt"), (key, "tls.key")):
        staged = live / f".{name}.new"
        shutil.copyfile(source, staged)
        os.replace(staged, live / name)


def _wait_for_serial(port: int, serial: int, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while (served := _served_serial(port)) != serial:
        assert time.monotonic() < deadline, f"still serving {served}, want {serial}"
        time.sleep(INTERVAL)


def _run_on(loop: str, main: Any) -> None:
    factory = uvloop.new_event_loop if loop == "uvloop" else None
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(main)


@pytest.fixture(params=["asyncio", "uvloop"])  # the webhook runs on uvloop
def live(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[tuple[Path, int]]:
    """The server on the pair in ``live/``; yields the folder and the port."""
    first = tmp_path / "first"
    first.mkdir()
    _, cert, key = tls_files(first)
    directory = tmp_path / "live"
    directory.mkdir()
    _swap(directory, cert, key)
    port = free_port()
    server, reloader = tls_server(
        _ok,
        directory / "tls.crt",
        directory / "tls.key",
        host="127.0.0.1",
        port=port,
        log_level="warning",
        lifespan="off",
    )
    thread = threading.Thread(
        target=_run_on,
        args=(request.param, serve_reloading(server, reloader, INTERVAL)),
        daemon=True,
    )
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "the TLS server did not start"
        time.sleep(0.05)
    yield directory, port
    server.should_exit = True
    thread.join(timeout=10)


def test_a_renewed_certificate_is_served_without_a_restart(
    live: tuple[Path, int], tmp_path: Path
) -> None:
    directory, port = live
    assert _served_serial(port) == _serial(directory / "tls.crt")
    renewed = tmp_path / "renewed"
    renewed.mkdir()
    _, cert, key = tls_files(renewed)
    _swap(directory, cert, key)
    _wait_for_serial(port, _serial(cert))


def test_a_half_written_rotation_keeps_the_old_pair_until_the_files_agree(
    live: tuple[Path, int], tmp_path: Path
) -> None:
    directory, port = live
    old = _serial(directory / "tls.crt")
    renewed = tmp_path / "renewed"
    renewed.mkdir()
    _, cert, key = tls_files(renewed)
    # The new certificate lands before its key: it does not match the old key.
    shutil.copyfile(cert, directory / ".tls.crt.new")
    os.replace(directory / ".tls.crt.new", directory / "tls.crt")
    time.sleep(INTERVAL * 5)
    assert _served_serial(port) == old
    _swap(directory, cert, key)
    _wait_for_serial(port, _serial(cert))
