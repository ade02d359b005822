#!/usr/bin/env python3
"""Start, stop and inspect a real local Kubernetes control plane on loopback.

There is no container engine here, so kind cannot run. Instead this script does what
controller-runtime's envtest does, plus the parts envtest leaves out: etcd,
kube-apiserver, kube-controller-manager (Job controller, garbage collector, service
account tokens), kube-scheduler, and kwok, which plays the kubelet for fake nodes and
moves pods Running -> Succeeded/Failed according to hack/kwok-stages.yaml.

    python hack/cluster.py up            # idempotent; last stdout line is the kubeconfig
    python hack/cluster.py status        # exit 0 when up
    python hack/cluster.py kubeconfig    # the admin kubeconfig path
    python hack/cluster.py bin kubectl   # the path of a built binary
    python hack/cluster.py down [--purge]

The processes outlive `up` (each in its own session, logging to the state directory), so
the test suite and `make run` share one control plane. Progress goes to stderr; stdout
carries only the paths callers capture.

Environment (all optional): AMBIENT_CLUSTER_DIR (state; default <cache>/cluster),
AMBIENT_CACHE (default ${XDG_CACHE_HOME:-~/.cache}/ambient), K8S_VERSION, ETCD_VERSION,
KWOK_VERSION (as in hack/build-control-plane.sh), AMBIENT_ETCD_PORT,
AMBIENT_ETCD_PEER_PORT, AMBIENT_APISERVER_PORT, AMBIENT_KCM_PORT,
AMBIENT_SCHEDULER_PORT, AMBIENT_KWOK_PORT.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import fcntl
import json
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
BUILD_SCRIPT = REPO_ROOT / "hack" / "build-control-plane.sh"
STAGES_FILE = REPO_ROOT / "hack" / "kwok-stages.yaml"

CLUSTER_NAME = "ambient-local"
SERVICE_CIDR = "10.96.0.0/16"
SERVICE_IP = "10.96.0.1"
POD_CIDR = "10.0.0.1/24"
NODE_IP = "10.0.0.1"
SA_ISSUER = "https://kubernetes.default.svc.cluster.local"
FAKE_NODES = ("kwok-node-0", "kwok-node-1")
KWOK_NODE_ANNOTATION = "kwok.x-k8s.io/node"

# Start order; `down` stops them in reverse.
COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok")
K8S_BINARIES = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl")

STOP_TIMEOUT_SECONDS = 15.0
START_TIMEOUT_SECONDS = 120.0
LOG_TAIL_LINES = 25


class ClusterError(Exception):
    """A failure worth a clear message; `log` names the file that explains it."""

    def __init__(self, message: str, log: Path | None = None) -> None:
        super().__init__(message)
        self.log = log


@dataclass(frozen=True)
class Settings:
    """Where things live and which ports they use, read once from the environment."""

    cache: Path
    state: Path
    k8s_version: str
    etcd_version: str
    kwok_version: str
    etcd_port: int
    etcd_peer_port: int
    apiserver_port: int
    kcm_port: int
    scheduler_port: int
    kwok_port: int

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        """Mirror hack/build-control-plane.sh's defaults so both agree on binary paths."""
        xdg = env.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        cache = Path(env.get("AMBIENT_CACHE") or Path(xdg) / "ambient").expanduser()
        state = Path(env.get("AMBIENT_CLUSTER_DIR") or cache / "cluster").expanduser()
        return cls(
            cache=cache,
            state=state,
            k8s_version=env.get("K8S_VERSION") or "v1.35.4",
            etcd_version=env.get("ETCD_VERSION") or "v3.6.14",
            kwok_version=env.get("KWOK_VERSION") or "v0.8.0",
            etcd_port=_port(env, "AMBIENT_ETCD_PORT", 23790),
            etcd_peer_port=_port(env, "AMBIENT_ETCD_PEER_PORT", 23800),
            apiserver_port=_port(env, "AMBIENT_APISERVER_PORT", 16443),
            kcm_port=_port(env, "AMBIENT_KCM_PORT", 16257),
            scheduler_port=_port(env, "AMBIENT_SCHEDULER_PORT", 16259),
            kwok_port=_port(env, "AMBIENT_KWOK_PORT", 16280),
        )

    def check_ports(self) -> None:
        """Two components told to share a port would race for it; refuse up front."""
        ports = [component_port(self, c) for c in COMPONENTS]
        ports.append((self.etcd_peer_port, "AMBIENT_ETCD_PEER_PORT"))
        seen: dict[int, str] = {}
        for port, variable in ports:
            if port in seen:
                raise ClusterError(f"{variable} and {seen[port]} are both {port}")
            seen[port] = variable

    def binary(self, name: str) -> Path:
        """The cached binary for `name`, laid out by version as the build script does."""
        if name == "etcd":
            return self.cache / "bin" / f"etcd-{self.etcd_version}" / "etcd"
        if name == "kwok":
            return self.cache / "bin" / f"kwok-{self.kwok_version}" / "kwok"
        if name in K8S_BINARIES:
            return self.cache / "bin" / f"kubernetes-{self.k8s_version}" / name
        raise ClusterError(f"unknown binary {name!r}; known: etcd, kwok, {', '.join(K8S_BINARIES)}")

    @property
    def pki(self) -> Path:
        return self.state / "pki"

    @property
    def logs(self) -> Path:
        return self.state / "logs"

    @property
    def run(self) -> Path:
        return self.state / "run"

    @property
    def kubeconfig(self) -> Path:
        """The admin kubeconfig that tests, kubectl and `make run` use."""
        return self.state / "kubeconfig"

    @property
    def apiserver_url(self) -> str:
        return f"https://127.0.0.1:{self.apiserver_port}"

    def log(self, component: str) -> Path:
        return self.logs / f"{component}.log"

    def pidfile(self, component: str) -> Path:
        return self.run / f"{component}.pid"

    def component_kubeconfig(self, component: str) -> Path:
        return self.pki / f"{component}.kubeconfig"


def _port(env: Mapping[str, str], name: str, default: int) -> int:
    """Read a port override, failing loudly on nonsense rather than binding port 0."""
    raw = env.get(name)
    if not raw:
        return default
    if not raw.isdigit() or not 0 < int(raw) < 65536:
        raise ClusterError(f"{name}={raw!r} is not a TCP port")
    return int(raw)


# --- output -------------------------------------------------------------------------------


def step(message: str) -> None:
    """Progress goes to stderr, so `$(cluster.py up)` captures only the kubeconfig path."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    """The end of a log, which is where a crashing component says why."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return f"(no log at {path})"
    return "\n".join(text.splitlines()[-lines:])


# --- certificates ---------------------------------------------------------------------------


def openssl(*args: str) -> None:
    """Run the openssl CLI; the project keeps no crypto dependency just for test certs."""
    result = subprocess.run(["openssl", *args], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise ClusterError(f"openssl {args[0]} failed:\n{result.stderr.strip()}")


def make_ca(pki: Path) -> None:
    """A throwaway CA, made once per state dir, that signs every cert in this cluster."""
    openssl(
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-sha256", "-days", "3650",
        "-keyout", str(pki / "ca.key"), "-out", str(pki / "ca.crt"),
        "-subj", f"/CN={CLUSTER_NAME}-ca",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign,digitalSignature",
    )  # fmt: skip


def make_leaf(pki: Path, name: str, subject: str, extensions: Sequence[str]) -> None:
    """Issue `<name>.crt`/`<name>.key` from the CA with the given X.509v3 extensions."""
    csr, ext = pki / f"{name}.csr", pki / f"{name}.ext"
    ext.write_text("\n".join(extensions) + "\n")
    try:
        openssl(
            "req", "-new", "-newkey", "rsa:2048", "-nodes", "-sha256",
            "-keyout", str(pki / f"{name}.key"), "-out", str(csr), "-subj", subject,
        )  # fmt: skip
        openssl(
            "x509", "-req", "-in", str(csr), "-sha256", "-days", "3650",
            "-CA", str(pki / "ca.crt"), "-CAkey", str(pki / "ca.key"),
            "-set_serial", str(secrets.randbits(120)),
            "-extfile", str(ext), "-out", str(pki / f"{name}.crt"),
        )  # fmt: skip
    finally:
        csr.unlink(missing_ok=True)
        ext.unlink(missing_ok=True)


def client_extensions() -> list[str]:
    return [
        "basicConstraints=critical,CA:FALSE",
        "keyUsage=critical,digitalSignature,keyEncipherment",
        "extendedKeyUsage=clientAuth",
    ]


def serving_extensions() -> list[str]:
    """The apiserver is reached as 127.0.0.1/localhost here and by its service name in-cluster."""
    names = ["kubernetes", "kubernetes.default", "kubernetes.default.svc",
             "kubernetes.default.svc.cluster.local", "localhost"]  # fmt: skip
    sans = [f"DNS:{n}" for n in names] + ["IP:127.0.0.1", f"IP:{SERVICE_IP}"]
    return [
        "basicConstraints=critical,CA:FALSE",
        "keyUsage=critical,digitalSignature,keyEncipherment",
        "extendedKeyUsage=serverAuth",
        "subjectAltName=" + ",".join(sans),
    ]


# name -> subject. The O=system:masters identities bypass RBAC; the others get the
# bootstrap RBAC roles Kubernetes grants those user names.
CLIENT_CERTS = {
    "admin": "/O=system:masters/CN=kubernetes-admin",
    "kube-controller-manager": "/CN=system:kube-controller-manager",
    "kube-scheduler": "/CN=system:kube-scheduler",
    "kwok": "/O=system:masters/CN=kwok",
}


def ensure_pki(settings: Settings) -> None:
    """Create whatever keys and certs are missing; a new CA invalidates every old leaf."""
    pki = settings.pki
    pki.mkdir(parents=True, exist_ok=True)
    pki.chmod(0o700)
    if not (pki / "ca.crt").exists() or not (pki / "ca.key").exists():
        step("creating a throwaway CA")
        for old in list(pki.glob("*.crt")) + list(pki.glob("*.key")):
            old.unlink()
        make_ca(pki)
    if not (pki / "apiserver.crt").exists():
        make_leaf(pki, "apiserver", "/CN=kube-apiserver", serving_extensions())
    for name, subject in CLIENT_CERTS.items():
        if not (pki / f"{name}.crt").exists():
            make_leaf(pki, name, subject, client_extensions())
    if not (pki / "sa.key").exists() or not (pki / "sa.pub").exists():
        step("creating the service-account signing key pair")
        openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048",
                "-out", str(pki / "sa.key"))  # fmt: skip
        openssl("pkey", "-in", str(pki / "sa.key"), "-pubout", "-out", str(pki / "sa.pub"))
    for key in pki.glob("*.key"):
        key.chmod(0o600)


def kubeconfig_text(server: str, pki: Path, user: str) -> str:
    """A kubeconfig with the certs inlined, so it still works if copied elsewhere."""

    def b64(name: str) -> str:
        return base64.b64encode((pki / name).read_bytes()).decode()

    return f"""apiVersion: v1
kind: Config
clusters:
- name: {CLUSTER_NAME}
  cluster:
    server: {server}
    certificate-authority-data: {b64("ca.crt")}
users:
- name: {user}
  user:
    client-certificate-data: {b64(f"{user}.crt")}
    client-key-data: {b64(f"{user}.key")}
contexts:
- name: {CLUSTER_NAME}
  context:
    cluster: {CLUSTER_NAME}
    user: {user}
    namespace: default
current-context: {CLUSTER_NAME}
"""


def write_private(path: Path, text: str) -> None:
    """Write a file holding key material, readable by the owner only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)


def write_kubeconfigs(settings: Settings) -> None:
    """One kubeconfig per client identity; rewritten each start in case the port changed."""
    for user in CLIENT_CERTS:
        path = settings.kubeconfig if user == "admin" else settings.component_kubeconfig(user)
        write_private(path, kubeconfig_text(settings.apiserver_url, settings.pki, user))


# --- command lines --------------------------------------------------------------------------


def command_line(settings: Settings, component: str) -> list[str]:
    """The argv for one component; every listener is on loopback."""
    builders: dict[str, Callable[[Settings], list[str]]] = {
        "etcd": etcd_args,
        "kube-apiserver": apiserver_args,
        "kube-controller-manager": controller_manager_args,
        "kube-scheduler": scheduler_args,
        "kwok": kwok_args,
    }
    return [str(settings.binary(component)), *builders[component](settings)]


def etcd_args(s: Settings) -> list[str]:
    """Single member, no fsync: the data is disposable and tests want speed."""
    client, peer = f"http://127.0.0.1:{s.etcd_port}", f"http://127.0.0.1:{s.etcd_peer_port}"
    return [
        "--name=default",
        f"--data-dir={s.state / 'etcd'}",
        f"--listen-client-urls={client}",
        f"--advertise-client-urls={client}",
        f"--listen-peer-urls={peer}",
        f"--initial-advertise-peer-urls={peer}",
        f"--initial-cluster=default={peer}",
        "--initial-cluster-state=new",
        "--unsafe-no-fsync=true",
        "--log-level=warn",
    ]


def apiserver_args(s: Settings) -> list[str]:
    """envtest's shape: loopback, client-cert auth, RBAC, SA token signing.

    The endpoint reconciler is off because a loopback address is not a valid endpoint for
    the in-cluster `kubernetes` Service, and nothing in-cluster dials the apiserver here.
    """
    pki = s.pki
    return [
        "--bind-address=127.0.0.1",
        "--advertise-address=127.0.0.1",
        f"--secure-port={s.apiserver_port}",
        f"--etcd-servers=http://127.0.0.1:{s.etcd_port}",
        f"--cert-dir={pki / 'apiserver-generated'}",
        f"--tls-cert-file={pki / 'apiserver.crt'}",
        f"--tls-private-key-file={pki / 'apiserver.key'}",
        f"--client-ca-file={pki / 'ca.crt'}",
        f"--service-account-issuer={SA_ISSUER}",
        f"--service-account-key-file={pki / 'sa.pub'}",
        f"--service-account-signing-key-file={pki / 'sa.key'}",
        "--authorization-mode=Node,RBAC",
        f"--service-cluster-ip-range={SERVICE_CIDR}",
        "--allow-privileged=true",
        "--endpoint-reconciler-type=none",
        # AMBIENT_PROFILING=1 serves /debug/pprof, for finding where the API server's CPU
        # goes under a benchmark (`kubectl get --raw /debug/pprof/profile?seconds=20`).
        f"--profiling={'true' if os.environ.get('AMBIENT_PROFILING') == '1' else 'false'}",
    ]


def serving_args(port: int, component: str, s: Settings) -> list[str]:
    """Shared by controller-manager and scheduler: a loopback port for /healthz.

    No --authentication-kubeconfig/--authorization-kubeconfig: /healthz is always allowed
    anonymously, and with them the components log an error every few seconds because the
    apiserver (no front proxy here) publishes no requestheader CA.
    """
    return [
        f"--kubeconfig={s.component_kubeconfig(component)}",
        "--bind-address=127.0.0.1",
        f"--secure-port={port}",
        "--leader-elect=false",
        "--profiling=false",
    ]


def controller_manager_args(s: Settings) -> list[str]:
    """All default controllers; per-controller SA credentials so RBAC is exercised as in prod."""
    pki = s.pki
    return [
        *serving_args(s.kcm_port, "kube-controller-manager", s),
        "--controllers=*",
        "--use-service-account-credentials=true",
        f"--root-ca-file={pki / 'ca.crt'}",
        f"--service-account-private-key-file={pki / 'sa.key'}",
        f"--cluster-signing-cert-file={pki / 'ca.crt'}",
        f"--cluster-signing-key-file={pki / 'ca.key'}",
        f"--service-cluster-ip-range={SERVICE_CIDR}",
        f"--cluster-name={CLUSTER_NAME}",
        # The default 20 QPS makes the Job controller, not the API server, the bottleneck
        # for a burst of a thousand Jobs; a real cluster's controllers are tuned too.
        "--kube-api-qps=200",
        "--kube-api-burst=400",
        "--concurrent-job-syncs=20",
        "--concurrent-gc-syncs=40",
    ]


def scheduler_args(s: Settings) -> list[str]:
    return [
        *serving_args(s.scheduler_port, "kube-scheduler", s),
        "--kube-api-qps=200",
        "--kube-api-burst=400",
    ]


def kwok_args(s: Settings) -> list[str]:
    """kwok manages only nodes annotated as fake, so a real node could never be hijacked."""
    return [
        f"--kubeconfig={s.component_kubeconfig('kwok')}",
        f"--config={STAGES_FILE}",
        "--manage-all-nodes=false",
        f"--manage-nodes-with-annotation-selector={KWOK_NODE_ANNOTATION}=fake",
        "--manage-nodes-with-label-selector=",
        f"--cidr={POD_CIDR}",
        f"--node-ip={NODE_IP}",
        f"--server-address=127.0.0.1:{s.kwok_port}",
    ]


def component_env(settings: Settings, component: str) -> dict[str, str]:
    """kwok would also load ~/.kwok/kwok.yaml; point its work dir at our state instead."""
    env = dict(os.environ)
    if component == "kwok":
        env["KWOK_WORKDIR"] = str(settings.state / "kwok")
    return env


def component_port(settings: Settings, component: str) -> tuple[int, str]:
    """The port each component listens on, and the variable that moves it."""
    return {
        "etcd": (settings.etcd_port, "AMBIENT_ETCD_PORT"),
        "kube-apiserver": (settings.apiserver_port, "AMBIENT_APISERVER_PORT"),
        "kube-controller-manager": (settings.kcm_port, "AMBIENT_KCM_PORT"),
        "kube-scheduler": (settings.scheduler_port, "AMBIENT_SCHEDULER_PORT"),
        "kwok": (settings.kwok_port, "AMBIENT_KWOK_PORT"),
    }[component]


# --- processes ------------------------------------------------------------------------------


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


def start(settings: Settings, component: str) -> subprocess.Popen[bytes]:
    """Start detached (own session, output to a log) so it outlives this command."""
    port, variable = component_port(settings, component)
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
            env=component_env(settings, component),
            start_new_session=True,
        )
    settings.pidfile(component).write_text(f"{proc.pid}\n")
    return proc


def port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


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


# --- HTTP probes ----------------------------------------------------------------------------

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


# --- waiting --------------------------------------------------------------------------------


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


def ensure_running(settings: Settings, components: Sequence[str], when: str) -> None:
    """Fail with the component's log if it has exited."""
    for component in components:
        if running_pid(settings, component) is None:
            raise ClusterError(f"{component} exited {when}", settings.log(component))


# --- cluster objects ------------------------------------------------------------------------


def fake_node(name: str) -> dict[str, Any]:
    """A node kwok adopts (by annotation). No taints, so ordinary pods schedule here."""
    resources = {"cpu": "64", "memory": "256Gi", "pods": "2000", "ephemeral-storage": "1Ti"}
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {KWOK_NODE_ANNOTATION: "fake", "node.alpha.kubernetes.io/ttl": "0"},
            "labels": {
                "type": "kwok",
                "kubernetes.io/arch": "amd64",
                "kubernetes.io/os": "linux",
                "kubernetes.io/hostname": name,
                "kubernetes.io/role": "agent",
                "node-role.kubernetes.io/agent": "",
            },
        },
        "spec": {},
        "status": {
            "capacity": resources,
            "allocatable": resources,
            "nodeInfo": {"architecture": "amd64", "operatingSystem": "linux"},
        },
    }


def ensure_nodes(settings: Settings) -> None:
    """Create the fake nodes; existing ones (from an earlier run) are left as they are."""
    for name in FAKE_NODES:
        status, body = api(settings, "POST", "/api/v1/nodes", fake_node(name))
        if status not in (201, 409):
            raise ClusterError(f"creating node {name} failed: HTTP {status}: {body}")


def nodes_ready(settings: Settings) -> bool:
    for name in FAKE_NODES:
        status, node = api(settings, "GET", f"/api/v1/nodes/{name}")
        if status != 200:
            return False
        conditions = node.get("status", {}).get("conditions") or []
        if not any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions):
            return False
    return True


def default_service_account_exists(settings: Settings) -> bool:
    """Pods are refused until the SA controller has made `default`; wait so tests need not."""
    status, _ = api(settings, "GET", "/api/v1/namespaces/default/serviceaccounts/default")
    return status == 200


# --- commands -------------------------------------------------------------------------------


@contextlib.contextmanager
def locked(settings: Settings) -> Iterator[None]:
    """Serialise up/down, e.g. when several test workers call `up` at once."""
    settings.state.parent.mkdir(parents=True, exist_ok=True)
    lock_path = settings.state.parent / f".{settings.state.name}.lock"
    with lock_path.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def running_components(settings: Settings) -> list[str]:
    return [c for c in COMPONENTS if running_pid(settings, c) is not None]


def is_up(settings: Settings) -> bool:
    """Every process alive and the apiserver ready: good enough to hand out the kubeconfig."""
    return (
        len(running_components(settings)) == len(COMPONENTS)
        and settings.kubeconfig.exists()
        and apiserver_ready(settings)
    )


def ensure_binaries(settings: Settings) -> None:
    """Build only when something is missing; the build script caches by version."""
    missing = [c for c in (*COMPONENTS, "kubectl") if not settings.binary(c).exists()]
    if not missing:
        return
    step(f"missing {', '.join(missing)}; running {BUILD_SCRIPT.name} (cold: many minutes)")
    result = subprocess.run(["bash", str(BUILD_SCRIPT), "all"], stdout=sys.stderr, check=False)
    if result.returncode != 0:
        raise ClusterError(f"{BUILD_SCRIPT} failed with exit code {result.returncode}")
    still = [c for c in missing if not settings.binary(c).exists()]
    if still:
        raise ClusterError(f"the build finished but {', '.join(still)} is still missing")


def start_all(settings: Settings) -> None:
    """Start components in dependency order, each waited for before the next needs it."""
    settings.state.mkdir(parents=True, exist_ok=True)
    (settings.state / "etcd").mkdir(mode=0o700, exist_ok=True)
    ensure_pki(settings)
    write_kubeconfigs(settings)
    for component in ("etcd", "kube-apiserver"):
        step(f"starting {component}")
        start(settings, component)
        wait_for(component, health_check(settings, component), settings, [component])
    rest = ("kube-controller-manager", "kube-scheduler", "kwok")
    for component in rest:
        step(f"starting {component}")
        start(settings, component)
    for component in rest:
        wait_for(component, health_check(settings, component), settings, [component])
    step(f"registering fake nodes {', '.join(FAKE_NODES)}")
    ensure_nodes(settings)
    wait_for("nodes Ready", lambda: nodes_ready(settings), settings, ["kwok"])
    wait_for(
        "default service account",
        lambda: default_service_account_exists(settings),
        settings,
        ["kube-controller-manager"],
    )
    ensure_running(settings, COMPONENTS, "during start-up")


def cmd_up(settings: Settings) -> int:
    began = time.monotonic()
    with locked(settings):
        if is_up(settings):
            step(f"control plane already up (API {settings.apiserver_url})")
            print(settings.kubeconfig)
            return 0
        if running_components(settings):
            step("control plane partly running or unhealthy; restarting it")
            stop_all(settings)
        settings.check_ports()
        ensure_binaries(settings)
        step(f"state in {settings.state}")
        try:
            start_all(settings)
        except BaseException:
            step("start failed; stopping what was started")
            stop_all(settings)
            raise
    step(f"control plane up in {time.monotonic() - began:.1f}s (API {settings.apiserver_url})")
    step(f"kubectl: {settings.binary('kubectl')} --kubeconfig {settings.kubeconfig}")
    print(settings.kubeconfig)
    return 0


def cmd_down(settings: Settings, purge: bool) -> int:
    with locked(settings):
        stop_all(settings)
        if purge and settings.state.exists():
            shutil.rmtree(settings.state)
            step(f"removed {settings.state}")
    step("control plane down")
    return 0


def cmd_status(settings: Settings) -> int:
    running = set(running_components(settings))
    for component in COMPONENTS:
        print(f"{component}: {'running' if component in running else 'stopped'}")
    up = is_up(settings)
    print(f"status: {'up' if up else 'down' if not running else 'degraded'}")
    print(f"kubeconfig: {settings.kubeconfig}")
    return 0 if up else 1


def cmd_kubeconfig(settings: Settings) -> int:
    print(settings.kubeconfig)
    if not settings.kubeconfig.exists():
        print("no kubeconfig yet; run `python hack/cluster.py up`", file=sys.stderr)
        return 1
    return 0


def cmd_bin(settings: Settings, name: str) -> int:
    path = settings.binary(name)
    print(path)
    if not path.exists():
        print(f"{name} is not built yet; run hack/build-control-plane.sh", file=sys.stderr)
        return 1
    return 0


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("up", help="start the control plane (idempotent); prints the kubeconfig")
    down = sub.add_parser("down", help="stop every component")
    down.add_argument("--purge", action="store_true", help="also delete the state directory")
    sub.add_parser("status", help="say whether it is up; exit 0 when it is")
    sub.add_parser("kubeconfig", help="print the admin kubeconfig path")
    binary = sub.add_parser("bin", help="print the path of a built binary")
    binary.add_argument("name", help="kubectl, kube-apiserver, etcd, kwok, ...")
    return parser.parse_args(argv)


def run(args: argparse.Namespace, settings: Settings) -> int:
    if args.command == "up":
        return cmd_up(settings)
    if args.command == "down":
        return cmd_down(settings, args.purge)
    if args.command == "status":
        return cmd_status(settings)
    if args.command == "kubeconfig":
        return cmd_kubeconfig(settings)
    return cmd_bin(settings, args.name)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        settings = Settings.from_env(os.environ)
        return run(args, settings)
    except ClusterError as error:
        print(f"error: {error}", file=sys.stderr)
        if error.log is not None:
            print(f"--- last lines of {error.log} ---\n{tail(error.log)}\n---", file=sys.stderr)
            print(
                f"Logs are in {error.log.parent}. Fix the cause, then run "
                "`python hack/cluster.py down && python hack/cluster.py up`; "
                "`down --purge` starts over with a new CA and empty etcd.",
                file=sys.stderr,
            )
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
