"""The command behind hack/cluster.py: up, down, status, kubeconfig, bin.

    python hack/cluster.py up            # idempotent; last stdout line is the kubeconfig
    python hack/cluster.py status        # exit 0 when up
    python hack/cluster.py kubeconfig    # the admin kubeconfig path
    python hack/cluster.py bin kubectl   # the path of a built binary
    python hack/cluster.py down [--purge]

The processes outlive `up` (each in its own session, logging to the state directory), so
the test suite and `make run` share one control plane. Progress goes to stderr; stdout
carries only the paths callers capture. The environment variables are in `settings`.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from collections.abc import Sequence

from . import certs, nodes, probes, processes
from .errors import ClusterError
from .output import result, step, tail
from .settings import COMPONENTS, FAKE_NODES, Settings

DESCRIPTION = "Start, stop and inspect a real local Kubernetes control plane on loopback."
COMMAND = "python hack/cluster.py"


def is_up(settings: Settings) -> bool:
    """Every process alive and the apiserver ready: good enough to hand out the kubeconfig."""
    return (
        len(processes.running_components(settings)) == len(COMPONENTS)
        and settings.kubeconfig.exists()
        and not processes.stale(settings, "kube-apiserver")
        and probes.apiserver_ready(settings)
    )


def start_all(settings: Settings) -> None:
    """Start components in dependency order, each waited for before the next needs it."""
    settings.state.mkdir(parents=True, exist_ok=True)
    (settings.state / "etcd").mkdir(mode=0o700, exist_ok=True)
    certs.ensure_pki(settings)
    certs.write_kubeconfigs(settings)
    certs.write_admission_config(settings)
    for component in ("etcd", "kube-apiserver"):
        step(f"starting {component}")
        processes.start(settings, component)
        probes.wait_for(component, probes.health_check(settings, component), settings, [component])
    rest = ("kube-controller-manager", "kube-scheduler", "kwok")
    for component in rest:
        step(f"starting {component}")
        processes.start(settings, component)
    for component in rest:
        probes.wait_for(component, probes.health_check(settings, component), settings, [component])
    step(f"registering fake nodes {', '.join(FAKE_NODES)}")
    nodes.ensure_nodes(settings)
    probes.wait_for("nodes Ready", lambda: nodes.nodes_ready(settings), settings, ["kwok"])
    probes.wait_for(
        "default service account",
        lambda: nodes.default_service_account_exists(settings),
        settings,
        ["kube-controller-manager"],
    )
    processes.ensure_running(settings, COMPONENTS, "during start-up")


def cmd_up(settings: Settings) -> int:
    began = time.monotonic()
    with processes.locked(settings):
        if is_up(settings):
            step(f"control plane already up (API {settings.apiserver_url})")
            result(settings.kubeconfig)
            return 0
        if processes.running_components(settings):
            step("control plane partly running or unhealthy; restarting it")
            processes.stop_all(settings)
        settings.check_ports()
        processes.ensure_binaries(settings)
        step(f"state in {settings.state}")
        try:
            start_all(settings)
        except BaseException:
            step("start failed; stopping what was started")
            processes.stop_all(settings)
            raise
    step(f"control plane up in {time.monotonic() - began:.1f}s (API {settings.apiserver_url})")
    step(f"kubectl: {settings.binary('kubectl')} --kubeconfig {settings.kubeconfig}")
    result(settings.kubeconfig)
    return 0


def cmd_down(settings: Settings, purge: bool) -> int:
    with processes.locked(settings):
        processes.stop_all(settings)
        if purge and settings.state.exists():
            shutil.rmtree(settings.state)
            step(f"removed {settings.state}")
    step("control plane down")
    return 0


def cmd_status(settings: Settings) -> int:
    running = set(processes.running_components(settings))
    for component in COMPONENTS:
        result(f"{component}: {'running' if component in running else 'stopped'}")
    up = is_up(settings)
    result(f"status: {'up' if up else 'down' if not running else 'degraded'}")
    result(f"kubeconfig: {settings.kubeconfig}")
    return 0 if up else 1


def cmd_kubeconfig(settings: Settings) -> int:
    result(settings.kubeconfig)
    if not settings.kubeconfig.exists():
        print(f"no kubeconfig yet; run `{COMMAND} up`", file=sys.stderr)
        return 1
    return 0


def cmd_bin(settings: Settings, name: str) -> int:
    path = settings.binary(name)
    result(path)
    if not path.exists():
        print(f"{name} is not built yet; run hack/build-control-plane.sh", file=sys.stderr)
        return 1
    return 0


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=DESCRIPTION)
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


def report(error: ClusterError) -> None:
    """Say what failed, show the log that explains it, and how to start over."""
    print(f"error: {error}", file=sys.stderr)
    if error.log is not None:
        print(f"--- last lines of {error.log} ---\n{tail(error.log)}\n---", file=sys.stderr)
        print(
            f"Logs are in {error.log.parent}. Fix the cause, then run "
            f"`{COMMAND} down && {COMMAND} up`; "
            "`down --purge` starts over with a new CA and empty etcd.",
            file=sys.stderr,
        )


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        settings = Settings.from_env(os.environ)
        return run(args, settings)
    except ClusterError as error:
        report(error)
        return 1
    except KeyboardInterrupt:
        return 130
