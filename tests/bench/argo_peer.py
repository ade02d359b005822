"""The peer bench_peer.py measures beside ours: Argo Events on the local control plane.

Its GitHub webhook EventSource takes the signed deliveries, publishes each to the EventBus
(a JetStream NATS server) and a Sensor's Kubernetes trigger creates a runner Job from it.
On this control plane pods do not run (kwok fakes them), so the three processes run here,
started the way Argo's controllers start their pods, each given what its pod would have:

* the objects: the EventSource and Sensor are created in the API server (the module's
  CRDs) and read back, then handed over base64 in EVENTSOURCE_OBJECT / SENSOR_OBJECT,
  with EVENTBUS_CONFIG and EVENTBUS_SUBJECT as the controllers set them;
* the EventBus as the controller deploys a JetStream bus: TLS, a user and password per
  account, encryption at rest, the controller's default stream settings (one replica:
  one server here);
* a filesystem of its own (chroot): the secrets at the paths Argo reads them from
  (/argo-events/secrets/<name>/<key>, /etc/eventbus/auth/auth.yaml);
* the EventSource a network namespace of its own, joined to this host by a veth pair:
  every Argo process binds its metrics server to :7777, as each pod may. The Sensor stays
  in the host's network, where the API server listens (127.0.0.1).

Needs root (network namespaces, chroot) and ``ip``. ``close()`` stops every process and
removes the network namespace.
"""

from __future__ import annotations

import base64
import contextlib
import ipaddress
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, Any

from support import ROOT, ControlPlane, free_port, say

sys.path.insert(0, str(ROOT / "hack"))
from localrun import tls_files

ARGO_BIN = ["/bin/argo-events"]  # where each chroot holds the binary

BUILD = ROOT / "hack" / "build-argo-events.sh"
CRDS = "manifests/base/crds"  # in the Argo Events module
WEBHOOK_PORT = 12000  # the port in Argo's own GitHub example
SECRET_NAME, SECRET_KEY = "github-webhook", "secret"
STREAM_CONFIG = (
    # Argo's controller defaults (manifests/install.yaml, controller-config), one replica.
    "maxMsgs: 50000\nmaxAge: 168h\nmaxBytes: -1\nreplicas: 1\nduplicates: 300s\n"
    "retention: 0\ndiscard: 0\n"
)


def build() -> dict[str, str]:
    """Build (or take from the cache) Argo Events and the NATS server; their paths."""
    out = subprocess.run(["bash", str(BUILD)], stdout=subprocess.PIPE, text=True, check=True)
    found = dict(line.split("=", 1) for line in out.stdout.split())
    return {"argo": found["ARGO_EVENTS"], "nats": found["NATS_SERVER"]}


def _module_dir() -> Path:
    version = os.environ.get("ARGO_EVENTS_VERSION", "v1.9.6")
    out = subprocess.run(
        ["go", "mod", "download", "-json", f"github.com/argoproj/argo-events@{version}"],
        stdout=subprocess.PIPE,
        text=True,
        check=True,
        env={**os.environ, "GOTOOLCHAIN": "local"},
    )
    return Path(json.loads(out.stdout)["Dir"])


def _free_subnet() -> tuple[str, str]:
    """Two addresses of a /30 under 10.231.0.0/16 that no interface here uses."""
    ip = ["ip", "-4", "-o", "addr"]
    used = subprocess.run(ip, check=True, capture_output=True, text=True).stdout
    for net in ipaddress.ip_network("10.231.0.0/16").subnets(new_prefix=30):
        host, peer = list(net.hosts())
        if f" {host}/" not in used and f" {peer}/" not in used:
            return str(host), str(peer)
    raise SystemExit("no free /30 under 10.231.0.0/16 for the EventSource's network")


def _rootfs(base: Path, binary: str, files: dict[str, str]) -> Path:
    """A directory to chroot into: the binary at /bin/argo-events and ``files``."""
    (base / "bin").mkdir(parents=True)
    (base / "tmp").mkdir()
    try:
        os.link(binary, base / "bin" / "argo-events")
    except OSError:  # another filesystem
        shutil.copy2(binary, base / "bin" / "argo-events")
    for path, text in files.items():
        target = base / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
        target.chmod(0o600)
    return base


class ArgoEvents:
    """The EventBus, the GitHub EventSource and a Sensor creating ``job`` per delivery."""

    def __init__(
        self, cp: ControlPlane, ns: str, job: dict[str, Any], run_dir: Path, log: IO[bytes]
    ) -> None:
        self.cp, self.ns, self.run_dir = cp, ns, run_dir
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.netns = f"ambient-bench-{os.getpid()}"
        self.host_if = f"ab{os.getpid()}h"[:15]
        self.secret = ""
        binaries = build()
        self._crds_and_objects(job)
        try:
            self._start(binaries, log)
        except BaseException:
            self.close()
            raise

    @property
    def url(self) -> str:
        return f"http://{self.peer_ip}:{WEBHOOK_PORT}/github"

    def pids(self) -> dict[str, int]:
        return {name: p.pid for name, p in self.procs.items()}

    def _crds_and_objects(self, job: dict[str, Any]) -> None:
        crds = sorted((_module_dir() / CRDS).glob("argoproj.io_*.yaml"))  # not kustomization
        self.cp.kubectl("apply", "--server-side", *(f"--filename={c}" for c in crds))
        self.cp.kubectl("wait", "--for=condition=Established", "crd", "--all", "--timeout=60s")
        name_param = {
            "src": {"dependencyName": "pr", "dataKey": "body.X-GitHub-Delivery"},
            "dest": "metadata.name",
            "operation": "append",  # to the template's "pr-"
        }
        objects = {
            "eventsources": {
                "apiVersion": "argoproj.io/v1alpha1",
                "kind": "EventSource",
                "metadata": {"name": "github", "namespace": self.ns},
                "spec": {
                    "eventBusName": "default",
                    "github": {
                        "pr": {
                            "repositories": [{"owner": "octo-org", "names": ["hello-world"]}],
                            "webhook": {
                                "endpoint": "/github",
                                "port": str(WEBHOOK_PORT),
                                "method": "POST",
                            },
                            "events": ["pull_request"],
                            "webhookSecret": {"name": SECRET_NAME, "key": SECRET_KEY},
                            "contentType": "json",
                            "active": True,
                        }
                    },
                },
            },
            "sensors": {
                "apiVersion": "argoproj.io/v1alpha1",
                "kind": "Sensor",
                "metadata": {"name": "github-job", "namespace": self.ns},
                "spec": {
                    "eventBusName": "default",
                    "dependencies": [
                        {
                            "name": "pr",
                            "eventSourceName": "github",
                            "eventName": "pr",
                            "filters": {
                                "data": [
                                    {
                                        "path": "body.X-GitHub-Event",
                                        "type": "string",
                                        "value": ["pull_request"],
                                    }
                                ]
                            },
                        }
                    ],
                    "triggers": [
                        {
                            "template": {
                                "name": "runner-job",
                                "k8s": {
                                    "operation": "create",
                                    "source": {"resource": job},
                                    "parameters": [name_param],
                                },
                            }
                        }
                    ],
                },
            },
        }
        self.objects: dict[str, dict[str, Any]] = {}
        for plural, obj in objects.items():
            self.cp.custom.create_namespaced_custom_object(
                "argoproj.io", "v1alpha1", self.ns, plural, obj
            )
            # What the controller reads and hands to the pod: the server's object.
            self.objects[plural] = self.cp.custom.get_namespaced_custom_object(
                "argoproj.io", "v1alpha1", self.ns, plural, obj["metadata"]["name"]
            )

    def _start(self, binaries: dict[str, str], log: IO[bytes]) -> None:
        host_ip, self.peer_ip = _free_subnet()
        self._network(host_ip)
        nats_port = free_port()
        user, password = "js-" + secrets.token_hex(4), secrets.token_urlsafe(24)
        nats_dir = self.run_dir / "nats"
        nats_dir.mkdir(parents=True)
        ca, cert, key = _tls(nats_dir)
        # assets/jetstream/nats.conf and server-auth.conf of Argo's controller, filled in.
        (nats_dir / "nats-js.conf").write_text(
            f"""max_payload: 1MB
host: {host_ip}
port: {nats_port}
server_name: eventbus-default-js-0
jetstream {{
  key: "{secrets.token_urlsafe(32)}"
  store_dir: "{nats_dir / "store"}"
  max_memory_store: -1
  max_file_store: 1TB
}}
system_account: sys
accounts: {{
  "js": {{"jetstream": true, "users": [{{"user": "{user}", "pass": "{password}"}}]}},
  "sys": {{"users": [{{"user": "sys", "pass": "{secrets.token_urlsafe(24)}"}}]}}
}}
tls {{
  cert_file: "{cert}"
  key_file: "{key}"
  ca_file: "{ca}"
}}
"""
        )
        self._spawn("nats", [binaries["nats"], "-c", str(nats_dir / "nats-js.conf")], {}, log)
        self._wait_port(host_ip, nats_port, "nats-server")

        bus = {
            "jetstream": {
                "url": f"nats://{host_ip}:{nats_port}",
                "accessSecret": {"name": "eventbus-default-js-client-auth", "key": "client-auth"},
                "streamConfig": STREAM_CONFIG,
            }
        }
        auth = {"/etc/eventbus/auth/auth.yaml": f"username: {user}\npassword: {password}\n"}
        common = {
            "EVENTBUS_SUBJECT": f"eventbus-{self.ns}",
            "EVENTBUS_CONFIG": _b64(bus),
            "LEADER_ELECTION": "",
        }
        self.secret = secrets.token_urlsafe(24)
        es_root = _rootfs(
            self.run_dir / "eventsource",
            binaries["argo"],
            {**auth, f"/argo-events/secrets/{SECRET_NAME}/{SECRET_KEY}": self.secret},
        )
        self._spawn(
            "eventsource",
            ["ip", "netns", "exec", self.netns, *self._chroot(es_root, "eventsource-service")],
            {
                **common,
                "EVENTSOURCE_OBJECT": _b64(_pod_copy(self.objects["eventsources"])),
                "POD_NAME": "github-eventsource-0",
            },
            log,
        )
        kubeconfig = subprocess.run(
            [self.cp.kubectl_path, "config", "view", "--raw", "--flatten", "--minify"],
            env=self.cp.env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        sensor_root = _rootfs(
            self.run_dir / "sensor", binaries["argo"], {**auth, "/kubeconfig": kubeconfig}
        )
        self._spawn(
            "sensor",
            self._chroot(sensor_root, "sensor-service"),
            {
                **common,
                "SENSOR_OBJECT": _b64(_pod_copy(self.objects["sensors"])),
                "POD_NAME": "github-job-sensor-0",
                "KUBECONFIG": "/kubeconfig",
            },
            log,
        )
        self._wait_port(self.peer_ip, WEBHOOK_PORT, "the EventSource's webhook")

    @staticmethod
    def _chroot(root: Path, command: str) -> list[str]:
        return ["chroot", str(root), *ARGO_BIN, command]

    def _network(self, host_ip: str) -> None:
        peer_if = self.host_if[:-1] + "p"
        for cmd in (
            f"ip netns add {self.netns}",
            f"ip link add {self.host_if} type veth peer name {peer_if}",
            f"ip link set {peer_if} netns {self.netns}",
            f"ip addr add {host_ip}/30 dev {self.host_if}",
            f"ip link set {self.host_if} up",
            f"ip -n {self.netns} addr add {self.peer_ip}/30 dev {peer_if}",
            f"ip -n {self.netns} link set {peer_if} up",
            f"ip -n {self.netns} link set lo up",
        ):
            subprocess.run(cmd.split(), check=True, capture_output=True)

    def _spawn(self, name: str, cmd: list[str], env: dict[str, str], log: IO[bytes]) -> None:
        # `ip netns exec` and `chroot` exec what they run: the pid is the Argo process's.
        self.procs[name] = subprocess.Popen(
            cmd,
            env={"PATH": os.environ["PATH"], "HOME": "/tmp", **env},
            stdout=log,
            stderr=subprocess.STDOUT,
        )

    def _wait_port(self, host: str, port: int, what: str) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            for name, p in self.procs.items():
                if p.poll() is not None:
                    raise SystemExit(f"argo-events: {name} exited ({p.returncode}); see its log")
            with contextlib.suppress(OSError), socket.create_connection((host, port), 1):
                return
            time.sleep(0.2)
        raise SystemExit(f"argo-events: {what} did not listen on {host}:{port}")

    def close(self) -> None:
        for p in self.procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs.values():
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        subprocess.run(["ip", "netns", "del", self.netns], check=False, capture_output=True)
        subprocess.run(["ip", "link", "del", self.host_if], check=False, capture_output=True)


def _pod_copy(obj: dict[str, Any]) -> dict[str, Any]:
    """What the controllers put in the pod: the object's namespace, name and spec."""
    meta = obj["metadata"]
    return {"metadata": {"namespace": meta["namespace"], "name": meta["name"]}, "spec": obj["spec"]}


def _b64(obj: dict[str, Any]) -> str:
    return base64.b64encode(json.dumps(obj).encode()).decode()


def _tls(directory: Path) -> tuple[Path, Path, Path]:
    say("argo-events: TLS material for the EventBus")
    return tls_files(directory)
