"""`make run`: the product end to end on this machine, then keep the operator running.

1. A cluster: the local control plane (built and started by hack/cluster.py), or, with
   --use-current-context, whatever the current kubeconfig context points at.
2. The CRDs, applied server-side and waited for.
3. The operator, as a child process logging to .run/operator.log.
4. The examples: a namespace, its NamespacePolicy and a Session.
5. The Session followed until it finishes, each transition and history entry printed.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CLUSTER = [sys.executable, str(ROOT / "hack" / "cluster.py")]
EXAMPLE_NS, EXAMPLE_SESSION = "team-alpha", "fix-flaky-test"


def say(message: str) -> None:
    """Progress on stdout, timestamped."""
    print(f"==> [{time.strftime('%H:%M:%S')}] {message}", flush=True)


def fail(message: str) -> int:
    """An error a person can act on."""
    print(f"error: {message}", file=sys.stderr, flush=True)
    return 1


class Kubectl:
    """The kubectl to use, bound to one kubeconfig."""

    def __init__(self, binary: str, kubeconfig: str | None) -> None:
        self.binary = binary
        self.env = dict(os.environ)
        if kubeconfig:
            self.env["KUBECONFIG"] = kubeconfig

    def __call__(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [self.binary, *args],
            check=False,
            capture_output=True,
            text=True,
            env=self.env,
            timeout=120,
        )
        if check and proc.returncode != 0:
            raise RuntimeError(f"kubectl {' '.join(args)}: {proc.stderr.strip()}")
        return proc


def local_cluster() -> tuple[str, str]:
    """Start (or reuse) the local control plane; return kubeconfig and kubectl paths."""
    say("starting the local control plane (the first run builds it from source: minutes)")
    proc = subprocess.run([*CLUSTER, "up"], check=False, stdout=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        raise RuntimeError("the local control plane did not start; see the messages above")
    lines = proc.stdout.strip().splitlines()
    for line in lines[:-1]:
        print(line, flush=True)
    kubectl = subprocess.run(
        [*CLUSTER, "bin", "kubectl"], capture_output=True, text=True, check=True
    ).stdout.strip()
    return lines[-1], kubectl


def install_crds(kubectl: Kubectl) -> None:
    """Apply the CRDs server-side and wait until the API server serves them."""
    say("installing the CRDs")
    kubectl("apply", "--server-side", "--force-conflicts", "-f", str(ROOT / "crds"))
    for crd in ("sessions.ambient.ai", "namespacepolicies.ambient.ai"):
        kubectl("wait", "--for=condition=Established", f"crd/{crd}", "--timeout=60s")


def follow(kubectl: Kubectl, timeout: float) -> dict[str, Any]:
    """Print the example Session's transitions and history until it finishes."""
    seen_entries = 0
    last_phase: tuple[str, str] | None = None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        proc = kubectl(
            "get", "session", EXAMPLE_SESSION, "-n", EXAMPLE_NS, "-o", "json", check=False
        )
        if proc.returncode == 0:
            body: dict[str, Any] = json.loads(proc.stdout)
            status = body.get("status", {})
            for entry in status.get("history", [])[seen_entries:]:
                data = ", ".join(f"{k}={v}" for k, v in sorted(entry.get("data", {}).items()))
                print(f"    history[{entry['seq']}] {entry['event']} {data}", flush=True)
            seen_entries = len(status.get("history", []))
            phase = (status.get("phase", "Pending"), status.get("reason") or "")
            if phase != last_phase:
                reason = f" ({phase[1]})" if phase[1] else ""
                say(f"Session {EXAMPLE_NS}/{EXAMPLE_SESSION}: {phase[0]}{reason}")
                last_phase = phase
            if phase[0] in ("Completed", "Failed"):
                return body
        time.sleep(0.5)
    raise RuntimeError(
        f"Session {EXAMPLE_NS}/{EXAMPLE_SESSION} did not finish in {timeout:.0f}s; "
        "see .run/operator.log"
    )


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _remove_previous_example(kubectl: Kubectl) -> None:
    """A fresh run each time: the previous run's example Session and its children go."""
    # Foreground: the delete returns once the garbage collector removed the Job too, or
    # the new Session would find the old Job under its deterministic name (WorkloadConflict).
    kubectl(
        "delete",
        "session",
        EXAMPLE_SESSION,
        "-n",
        EXAMPLE_NS,
        "--ignore-not-found",
        "--cascade=foreground",
        "--wait=true",
    )
    # Children whose Session went while the garbage collector was not watching Sessions
    # (the CRD was just reinstalled) are never collected: remove them by label too.
    kubectl(
        "delete",
        "jobs,serviceaccounts,roles,rolebindings,configmaps",
        "-n",
        EXAMPLE_NS,
        "-l",
        f"ambient.ai/session={EXAMPLE_SESSION}",
        "--ignore-not-found",
        "--wait=true",
    )


def main(argv: list[str] | None = None) -> int:
    """Run everything; returns when interrupted (Ctrl-C or SIGTERM)."""
    # A shell that starts this in the background may have set SIGINT to be ignored;
    # Ctrl-C and a plain `kill` both stop it cleanly, operator included.
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--use-current-context",
        action="store_true",
        help="use the current kubeconfig context instead of the local control plane",
    )
    parser.add_argument("--timeout", type=float, default=180, help="seconds to wait")
    args = parser.parse_args(argv)
    try:
        if args.use_current_context:
            kubectl = Kubectl(os.environ.get("KUBECTL", "kubectl"), None)
            context = kubectl("config", "current-context").stdout.strip()
            say(f"using the current kubeconfig context: {context}")
            kubeconfig = os.environ.get("KUBECONFIG", "")
        else:
            kubeconfig, kubectl_bin = local_cluster()
            kubectl = Kubectl(kubectl_bin, kubeconfig)
            say(f"kubeconfig: {kubeconfig}")
            say(f"try: export KUBECONFIG={kubeconfig}; {kubectl_bin} get sessions -A")

        install_crds(kubectl)
    except (RuntimeError, subprocess.CalledProcessError, FileNotFoundError) as exc:
        return fail(str(exc))

    run_dir = ROOT / ".run"
    run_dir.mkdir(exist_ok=True)
    log_path = run_dir / "operator.log"
    say(f"starting the operator (log: {log_path})")
    env = dict(kubectl.env)
    with log_path.open("ab") as log:
        operator = subprocess.Popen(
            [sys.executable, "-m", "ambient.operator"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )
    try:
        say("applying examples/: namespace team-alpha, its NamespacePolicy, a Session")
        kubectl("apply", "-f", str(ROOT / "examples" / "namespace.yaml"))
        kubectl("apply", "-f", str(ROOT / "examples" / "namespacepolicy.yaml"))
        _remove_previous_example(kubectl)
        kubectl("apply", "-f", str(ROOT / "examples" / "session.yaml"))
        body = follow(kubectl, args.timeout)
        print(kubectl("get", "sessions", "-n", EXAMPLE_NS, "-o", "wide").stdout, flush=True)
        if body["status"]["phase"] != "Completed":
            return fail(f"the example Session failed: {body['status'].get('message')}")
        say(
            "the example Session reached Completed. The operator keeps running; "
            "apply your own Sessions, or press Ctrl-C to stop."
        )
        operator.wait()
        return fail(f"the operator exited with code {operator.returncode}; see {log_path}")
    except KeyboardInterrupt:
        say("stopping the operator")
        return 0
    except RuntimeError as exc:
        return fail(str(exc))
    finally:
        if operator.poll() is None:
            operator.send_signal(signal.SIGTERM)
            try:
                operator.wait(timeout=20)
            except subprocess.TimeoutExpired:
                operator.kill()


if __name__ == "__main__":
    sys.exit(main())
