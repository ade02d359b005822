"""Start, stop and find the component processes; build missing binaries (talks).

Each component runs detached in its own session, logging to the state directory, and is
found again through its pidfile, so the processes outlive the command that started them.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from .errors import ClusterError
from .flags import command_line, component_env
from .output import step
from .settings import BUILD_SCRIPT, COMPONENTS, Settings

STOP_TIMEOUT_SECONDS = 15.0


def process_alive(pid: int, binary: Path | None = None) -> bool:
    """True if `pid` runs and (when known) is our binary, so a recycled pid is not mistaken."""
    proc = Path(f"/proc/{pid}")
    if not proc.exists():
        if sys.platform.startswith("linux"):
            return False
        try:
            os.kill(pid, 0)
        except (ProcessLookupError, PermissionError):
            return False
        return True
    try:
        stat = (proc / "stat").read_text()
        argv0 = (proc / "cmdline").read_bytes().split(b"\0")[0].decode(errors="replace")
    except OSError:
        return False
    if stat.rsplit(")", 1)[-1].split()[0] in ("Z", "X"):
        return False
    # cmdline reads empty for a moment right after exec; the pid is live, so trust it.
    return binary is None or argv0 in ("", str(binary))


def running_pid(settings: Settings, component: str) -> int | None:
    """The component's pid if the pidfile points at a live process of the right binary."""
    try:
        pid = int(settings.pidfile(component).read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if process_alive(pid, settings.binary(component)) else None


def stale(settings: Settings, component: str) -> bool:
    """True when the component runs with other flags than this checkout gives it (started
    by an older checkout), so `up` restarts it rather than reuse it. Unknown (no /proc):
    not stale."""
    pid = running_pid(settings, component)
    if pid is None:
        return False
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().rstrip(b"\0").split(b"\0")
    except OSError:
        return False
    if argv == [b""]:  # read empty for a moment right after exec
        return False
    return [a.decode(errors="replace") for a in argv] != command_line(settings, component)


def running_components(settings: Settings) -> list[str]:
    return [c for c in COMPONENTS if running_pid(settings, c) is not None]


def ensure_running(settings: Settings, components: Sequence[str], when: str) -> None:
    """Fail with the component's log if it has exited."""
    for component in components:
        if running_pid(settings, component) is None:
            raise ClusterError(f"{component} exited {when}", settings.log(component))


def port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def start(settings: Settings, component: str) -> subprocess.Popen[bytes]:
    """Start detached (own session, output to a log) so it outlives this command."""
    port, variable = settings.component_port(component)
    if port_in_use(port):
        raise ClusterError(
            f"127.0.0.1:{port} is already in use, so {component} cannot listen there. "
            f"Stop whatever holds it or set {variable} to a free port."
        )
    settings.logs.mkdir(parents=True, exist_ok=True)
    settings.run.mkdir(parents=True, exist_ok=True)
    log_path = settings.log(component)
    with log_path.open("ab") as log:
        log.write(f"\n===== {time.strftime('%Y-%m-%d %H:%M:%S')} starting {component}\n".encode())
        log.flush()
        proc = subprocess.Popen(
            command_line(settings, component),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=settings.state,
            env=component_env(settings, component, os.environ),
            start_new_session=True,
        )
    settings.pidfile(component).write_text(f"{proc.pid}\n")
    return proc


def reap(pid: int) -> None:
    """Collect a child that died while `up` still runs, so it does not linger as a zombie."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def signal_group(pid: int, sig: signal.Signals) -> None:
    """Signal the component's whole session (it was started as a session leader)."""
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


def stop(settings: Settings, component: str) -> bool:
    """SIGTERM, then SIGKILL after a timeout. Returns whether it was running."""
    pid = running_pid(settings, component)
    if pid is None:
        settings.pidfile(component).unlink(missing_ok=True)
        return False
    binary = settings.binary(component)
    signal_group(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        reap(pid)
        if not process_alive(pid, binary):
            break
        time.sleep(0.1)
    else:
        step(f"{component} ignored SIGTERM for {STOP_TIMEOUT_SECONDS:.0f}s; sending SIGKILL")
        signal_group(pid, signal.SIGKILL)
        time.sleep(0.2)
        reap(pid)
    settings.pidfile(component).unlink(missing_ok=True)
    return True


def stop_all(settings: Settings) -> None:
    for component in reversed(COMPONENTS):
        if stop(settings, component):
            step(f"stopped {component}")


@contextlib.contextmanager
def locked(settings: Settings) -> Iterator[None]:
    """Serialise up/down, e.g. when several test workers call `up` at once."""
    settings.lock.parent.mkdir(parents=True, exist_ok=True)
    with settings.lock.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def ensure_binaries(settings: Settings) -> None:
    """Build only when something is missing; the build script caches by version."""
    missing = [c for c in (*COMPONENTS, "kubectl") if not settings.binary(c).exists()]
    if not missing:
        return
    step(f"missing {', '.join(missing)}; running {BUILD_SCRIPT.name} (cold: many minutes)")
    result = subprocess.run(["bash", str(BUILD_SCRIPT), "all"], stdout=sys.stderr, check=False)
    if result.returncode != 0:
        raise ClusterError(
            f"{BUILD_SCRIPT} failed with exit code {result.returncode}; its output above says "
            "why (Go and network access are needed for a cold build)"
        )
    still = [c for c in missing if not settings.binary(c).exists()]
    if still:
        raise ClusterError(f"the build finished but {', '.join(still)} is still missing")
