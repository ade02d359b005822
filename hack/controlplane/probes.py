"""Is each component serving? HTTP probes, the admin API call, and waiting (talks)."""

from __future__ import annotations

import json
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from typing import Any

from .errors import ClusterError
from .output import step
from .processes import ensure_running
from .settings import Settings

START_TIMEOUT_SECONDS = 120.0

# Loopback traffic must never go through an HTTP(S)_PROXY from the environment.
_NO_PROXY = urllib.request.ProxyHandler({})


def admin_tls(settings: Settings) -> ssl.SSLContext:
    """Verify the apiserver against our CA and authenticate as the admin client cert."""
    ctx = ssl.create_default_context(cafile=str(settings.pki / "ca.crt"))
    ctx.load_cert_chain(str(settings.pki / "admin.crt"), str(settings.pki / "admin.key"))
    return ctx


def unverified_tls() -> ssl.SSLContext:
    """controller-manager and scheduler serve /healthz with a self-signed in-memory cert."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def http(
    url: str,
    tls: ssl.SSLContext | None = None,
    method: str = "GET",
    body: Any = None,
    timeout: float = 5.0,
) -> tuple[int, bytes]:
    """Return (status, body) for any HTTP answer; raise OSError when nothing answers."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    handlers: list[urllib.request.BaseHandler] = [_NO_PROXY]
    if tls is not None:
        handlers.append(urllib.request.HTTPSHandler(context=tls))
    opener = urllib.request.build_opener(*handlers)
    try:
        with opener.open(request, timeout=timeout) as response:
            return int(response.status), bytes(response.read())
    except urllib.error.HTTPError as error:
        return int(error.code), bytes(error.read())


def healthy(url: str, tls: ssl.SSLContext | None = None) -> bool:
    try:
        status, _ = http(url, tls, timeout=2.0)
    except (OSError, ssl.SSLError):
        return False
    return status == 200


def api(settings: Settings, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    """Call the apiserver as admin; the body is decoded JSON (or None)."""
    status, raw = http(settings.apiserver_url + path, admin_tls(settings), method, body)
    try:
        return status, json.loads(raw) if raw else None
    except ValueError:
        return status, raw.decode(errors="replace")


def etcd_healthy(settings: Settings) -> bool:
    try:
        status, raw = http(f"http://127.0.0.1:{settings.etcd_port}/health", timeout=2.0)
        return status == 200 and json.loads(raw).get("health") == "true"
    except (OSError, ValueError):
        return False


def apiserver_ready(settings: Settings) -> bool:
    """/readyz covers etcd, RBAC bootstrap and the other post-start hooks."""
    try:
        return healthy(settings.apiserver_url + "/readyz", admin_tls(settings))
    except (OSError, ssl.SSLError):
        return False


def health_check(settings: Settings, component: str) -> Callable[[], bool]:
    """How to tell that a freshly started component is serving."""
    local = "127.0.0.1"
    checks: dict[str, Callable[[], bool]] = {
        "etcd": lambda: etcd_healthy(settings),
        "kube-apiserver": lambda: apiserver_ready(settings),
        "kube-controller-manager": lambda: healthy(
            f"https://{local}:{settings.kcm_port}/healthz", unverified_tls()
        ),
        "kube-scheduler": lambda: healthy(
            f"https://{local}:{settings.scheduler_port}/healthz", unverified_tls()
        ),
        "kwok": lambda: healthy(f"http://{local}:{settings.kwok_port}/healthz"),
    }
    return checks[component]


def wait_for(
    what: str,
    check: Callable[[], bool],
    settings: Settings,
    watch: Sequence[str],
    timeout: float = START_TIMEOUT_SECONDS,
) -> None:
    """Poll `check`, print progress, and fail fast if a watched component dies meanwhile."""
    started = time.monotonic()
    next_note = started + 10
    while True:
        ready = check()
        # Checked even on success: another process may have answered on the port.
        ensure_running(settings, watch, f"while waiting for {what}")
        if ready:
            break
        now = time.monotonic()
        if now - started > timeout:
            log = settings.log(watch[-1]) if watch else None
            raise ClusterError(f"timed out after {timeout:.0f}s waiting for {what}", log)
        if now >= next_note:
            step(f"  still waiting for {what} ({now - started:.0f}s)")
            next_note = now + 10
        time.sleep(0.25)
    step(f"  {what}: ok ({time.monotonic() - started:.1f}s)")
