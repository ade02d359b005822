"""Where things live, which versions and which ports, read once from the environment (pure).

Environment (all optional): AMBIENT_CLUSTER_PROFILE (``run``, the default, for `make run`;
``test`` for the test suite; ``bench`` for the benchmarks: each has its own state
directory and ports, so a test run never meets what a demo or a benchmark left behind,
and the three can run side by side), AMBIENT_CLUSTER_DIR (state; default
<cache>/cluster, <cache>/test-cluster or <cache>/bench-cluster),
AMBIENT_CACHE (default ${XDG_CACHE_HOME:-~/.cache}/ambient), K8S_VERSION, ETCD_VERSION,
KWOK_VERSION (as in hack/build-control-plane.sh), AMBIENT_ETCD_PORT,
AMBIENT_ETCD_PEER_PORT, AMBIENT_APISERVER_PORT, AMBIENT_KCM_PORT,
AMBIENT_SCHEDULER_PORT, AMBIENT_KWOK_PORT, and AMBIENT_PROFILING=1 to serve the API
server's /debug/pprof.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from .errors import ClusterError

REPO_ROOT = Path(__file__).resolve().parent.parent.parent
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

# Mirror hack/build-control-plane.sh so both agree on binary paths.
DEFAULT_VERSIONS = {"K8S_VERSION": "v1.35.4", "ETCD_VERSION": "v3.6.14", "KWOK_VERSION": "v0.8.0"}

# variable -> default port; each listener has its own variable so several control planes
# (one per worktree or CI job) can run side by side.
DEFAULT_PORTS = {
    "AMBIENT_ETCD_PORT": 23790,
    "AMBIENT_ETCD_PEER_PORT": 23800,
    "AMBIENT_APISERVER_PORT": 16443,
    "AMBIENT_KCM_PORT": 16257,
    "AMBIENT_SCHEDULER_PORT": 16259,
    "AMBIENT_KWOK_PORT": 16280,
}

# profile -> (state directory under the cache, offset added to every default port).
PROFILES = {"run": ("cluster", 0), "test": ("test-cluster", 100), "bench": ("bench-cluster", 200)}


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
    profiling: bool = False

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        """Read every setting from `env` (os.environ in the command, a dict in tests)."""
        home = env.get("HOME") or str(Path.home())
        xdg = env.get("XDG_CACHE_HOME") or str(Path(home) / ".cache")
        cache = _expand(env.get("AMBIENT_CACHE") or str(Path(xdg) / "ambient"), home)
        folder, offset = _profile(env)
        state = _expand(env.get("AMBIENT_CLUSTER_DIR") or str(cache / folder), home)
        return cls(
            cache=cache,
            state=state,
            k8s_version=env.get("K8S_VERSION") or DEFAULT_VERSIONS["K8S_VERSION"],
            etcd_version=env.get("ETCD_VERSION") or DEFAULT_VERSIONS["ETCD_VERSION"],
            kwok_version=env.get("KWOK_VERSION") or DEFAULT_VERSIONS["KWOK_VERSION"],
            etcd_port=_port(env, "AMBIENT_ETCD_PORT", offset),
            etcd_peer_port=_port(env, "AMBIENT_ETCD_PEER_PORT", offset),
            apiserver_port=_port(env, "AMBIENT_APISERVER_PORT", offset),
            kcm_port=_port(env, "AMBIENT_KCM_PORT", offset),
            scheduler_port=_port(env, "AMBIENT_SCHEDULER_PORT", offset),
            kwok_port=_port(env, "AMBIENT_KWOK_PORT", offset),
            profiling=env.get("AMBIENT_PROFILING") == "1",
        )

    def ports(self) -> list[tuple[int, str]]:
        """Every port this control plane listens on, with the variable that moves it."""
        return [
            *(self.component_port(c) for c in COMPONENTS),
            (self.etcd_peer_port, "AMBIENT_ETCD_PEER_PORT"),
        ]

    def component_port(self, component: str) -> tuple[int, str]:
        """The port `component` listens on, and the variable that moves it."""
        return {
            "etcd": (self.etcd_port, "AMBIENT_ETCD_PORT"),
            "kube-apiserver": (self.apiserver_port, "AMBIENT_APISERVER_PORT"),
            "kube-controller-manager": (self.kcm_port, "AMBIENT_KCM_PORT"),
            "kube-scheduler": (self.scheduler_port, "AMBIENT_SCHEDULER_PORT"),
            "kwok": (self.kwok_port, "AMBIENT_KWOK_PORT"),
        }[component]

    def check_ports(self) -> None:
        """Two components told to share a port would race for it; refuse up front."""
        seen: dict[int, str] = {}
        for port, variable in self.ports():
            if port in seen:
                raise ClusterError(
                    f"{variable} and {seen[port]} are both {port}; "
                    "give each component a port of its own."
                )
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
    def lock(self) -> Path:
        """Beside the state dir, not in it, so `down --purge` can delete the state whole."""
        return self.state.parent / f".{self.state.name}.lock"

    @property
    def apiserver_url(self) -> str:
        return f"https://127.0.0.1:{self.apiserver_port}"

    def log(self, component: str) -> Path:
        return self.logs / f"{component}.log"

    def pidfile(self, component: str) -> Path:
        return self.run / f"{component}.pid"

    @property
    def admission_config(self) -> Path:
        """The API server's AdmissionConfiguration (the client certificate for webhooks)."""
        return self.pki / "admission-config.yaml"

    def component_kubeconfig(self, component: str) -> Path:
        return self.pki / f"{component}.kubeconfig"


def _expand(path: str, home: str) -> Path:
    """`~` expanded against the given HOME, so the result depends on `env` alone."""
    if path == "~" or path.startswith("~/"):
        return Path(home + path[1:])
    return Path(path).expanduser()  # "~user/..." (rare) still needs the password database


def _profile(env: Mapping[str, str]) -> tuple[str, int]:
    name = env.get("AMBIENT_CLUSTER_PROFILE") or "run"
    if name not in PROFILES:
        known = ", ".join(PROFILES)
        raise ClusterError(f"AMBIENT_CLUSTER_PROFILE={name!r} is not a profile; use one of {known}")
    return PROFILES[name]


def _port(env: Mapping[str, str], name: str, offset: int = 0) -> int:
    """Read a port override, failing loudly on nonsense rather than binding port 0."""
    raw = env.get(name)
    if not raw:
        return DEFAULT_PORTS[name] + offset
    if not raw.isdigit() or not 0 < int(raw) < 65536:
        raise ClusterError(f"{name}={raw!r} is not a TCP port; set it to a number from 1 to 65535")
    return int(raw)
