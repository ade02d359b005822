"""`make run`: the whole product on this machine, then keep it running until Ctrl-C.

1. A cluster: the local control plane (built and started by hack/cluster.py), or, with
   --use-current-context, whatever the current kubeconfig context points at.
2. The CRDs, applied server-side and waited for.
3. A local S3-compatible store (moto's server), the admission webhook over TLS and
   registered with the API server for the example namespace, the ingress and the
   operator: each a child process logging to .run/<name>.log.
4. The examples: a namespace, its NamespacePolicy and a Session, followed to Completed.
5. A GitHub key and signing secret for the example namespace, and a signed sample
   pull_request delivery: the ready-to-paste curl command is printed and sent, and the
   Session it makes is followed from the delivery to Completed.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import localrun

ROOT = Path(__file__).resolve().parent.parent
CLUSTER = [sys.executable, str(ROOT / "hack" / "cluster.py")]
EXAMPLE_NS, EXAMPLE_SESSION = "team-alpha", "fix-flaky-test"
MUTATING_GROUP = "admissionregistration.k8s.io"


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

    def __call__(
        self, *args: str, check: bool = True, stdin: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [self.binary, *args],
            check=False,
            capture_output=True,
            input=stdin,
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


def follow(
    kubectl: Kubectl, timeout: float, namespace: str = EXAMPLE_NS, name: str = EXAMPLE_SESSION
) -> dict[str, Any]:
    """Print a Session's transitions and history until it finishes."""
    seen_entries = 0
    last_phase: tuple[str, str] | None = None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        proc = kubectl("get", "session", name, "-n", namespace, "-o", "json", check=False)
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
                say(f"Session {namespace}/{name}: {phase[0]}{reason}")
                last_phase = phase
            if phase[0] in ("Completed", "Failed"):
                return body
        time.sleep(0.5)
    raise RuntimeError(
        f"Session {namespace}/{name} did not finish in {timeout:.0f}s; see .run/operator.log"
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


def connect_github(kubectl: Kubectl) -> tuple[str, str]:
    """A GitHub key and signing secret for the example namespace, as an admin sets them
    up: the Secret, then the key's hash and the Secret's name in the policy."""
    key, key_hash = localrun.new_key()
    secret = secrets.token_hex(20)
    kubectl("delete", "secret", localrun.SIGNING_SECRET, "-n", EXAMPLE_NS, "--ignore-not-found")
    kubectl(
        "create", "secret", "generic", localrun.SIGNING_SECRET, "-n", EXAMPLE_NS,
        f"--from-literal=github={secret}",
    )  # fmt: skip
    patch = {
        "spec": {
            "webhookAuth": {
                "apiKeys": {"github": key_hash},
                "signingSecretRef": {"name": localrun.SIGNING_SECRET},
            }
        }
    }
    kubectl(
        "patch", "namespacepolicy", "policy", "-n", EXAMPLE_NS, "--type=merge",
        "-p", json.dumps(patch),
    )  # fmt: skip
    return key, secret


def main(argv: list[str] | None = None) -> int:
    """Run everything; returns when interrupted (Ctrl-C or SIGTERM)."""
    # A shell that starts this in the background may have set SIGINT to be ignored;
    # Ctrl-C and a plain `kill` both stop it cleanly, every component included.
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
        else:
            kubeconfig, kubectl_bin = local_cluster()
            kubectl = Kubectl(kubectl_bin, kubeconfig)
            say(f"kubeconfig: {kubeconfig}")
            say(f"try: export KUBECONFIG={kubeconfig}; {kubectl_bin} get sessions -A")
        install_crds(kubectl)
        me = kubectl("auth", "whoami", "-o", "jsonpath={.status.userInfo.username}").stdout
    except (RuntimeError, subprocess.CalledProcessError, FileNotFoundError) as exc:
        return fail(str(exc))

    run_dir = ROOT / ".run"
    run_dir.mkdir(exist_ok=True)
    # Every component logs text here (JSON is for log shippers).
    children = localrun.Children(run_dir, {**kubectl.env, "AMBIENT_LOG_FORMAT": "text"})
    registered: list[str] = []
    try:
        ingress = start_components(kubectl, children, me.strip(), registered)
        body = follow(kubectl, args.timeout)
        if body["status"]["phase"] != "Completed":
            return fail(f"the example Session failed: {body['status'].get('message')}")
        say("the example Session reached Completed")
        delivered = deliver_sample(kubectl, run_dir, ingress, args.timeout)
        print(kubectl("get", "sessions", "-n", EXAMPLE_NS, "-o", "wide").stdout, flush=True)
        if delivered["status"]["phase"] != "Completed":
            return fail(f"the delivered Session failed: {delivered['status'].get('message')}")
        say(
            "the delivery's Session reached Completed. Everything keeps running: send the "
            "command again (the same delivery: 200, nothing new), apply your own Sessions, "
            "or press Ctrl-C to stop."
        )
        while (gone := children.exited()) is None:
            time.sleep(1)
        return fail(f"the {gone} exited; see {run_dir / (gone + '.log')}")
    except KeyboardInterrupt:
        say("stopping")
        return 0
    except RuntimeError as exc:
        return fail(str(exc))
    finally:
        for name in reversed(registered):  # kind/name, the webhooks first
            kubectl("delete", name, "--ignore-not-found", check=False)
        children.stop(say)


def start_components(
    kubectl: Kubectl, children: localrun.Children, me: str, registered: list[str]
) -> str:
    """The store, the admission webhook (registered for the example namespace), the ingress
    and the operator; then the example namespace, policy and Session. The ingress's URL."""
    run_dir = children.run_dir
    say(f"starting a local S3-compatible store (log: {run_dir / 'store.log'})")
    store = localrun.start_store(children)
    say(f"starting the admission webhook over TLS (log: {run_dir / 'admission.log'})")
    served = kubectl("api-resources", f"--api-group={MUTATING_GROUP}", "-o", "name").stdout
    config, names = localrun.start_admission(
        children, store, me, mutating_policy=f"mutatingadmissionpolicies.{MUTATING_GROUP}" in served
    )
    say(f"starting the ingress (log: {run_dir / 'ingress.log'})")
    ingress = localrun.start_ingress(children, store)
    say(f"starting the operator (log: {run_dir / 'operator.log'})")
    children.start("operator", [sys.executable, "-m", "ambient.operator"], store)

    say("applying examples/: namespace team-alpha, its NamespacePolicy, a Session")
    kubectl("apply", "-f", str(ROOT / "examples" / "namespace.yaml"))
    kubectl("label", "namespace", EXAMPLE_NS, f"{localrun.LOCAL_LABEL}=true", "--overwrite")
    kubectl("apply", "-f", "-", stdin=json.dumps(config))
    registered.extend(names)
    say(f"the admission webhook now judges every Session and policy in {EXAMPLE_NS}")
    kubectl("apply", "-f", str(ROOT / "examples" / "namespacepolicy.yaml"))
    _remove_previous_example(kubectl)
    kubectl("apply", "-f", str(ROOT / "examples" / "session.yaml"))
    return ingress


def deliver_sample(kubectl: Kubectl, run_dir: Path, ingress: str, timeout: float) -> dict[str, Any]:
    """Connect GitHub, print the signed sample delivery's curl command, send it, and follow
    the Session it makes to its end."""
    say("connecting GitHub: a key and a signing secret for team-alpha")
    key, secret = connect_github(kubectl)
    command, headers = localrun.sample_delivery(run_dir, ingress, key, secret)
    ping = {**headers, "X-GitHub-Event": "ping", **localrun.signature(secret, b"{}")}
    localrun.wait_until(
        "the ingress to know the new key",
        lambda: localrun.send(ingress, key, ping, b"{}")[0] == 200,
        30,
        run_dir / "ingress.log",
    )
    say("a signed GitHub pull_request delivery; paste this to send it yourself:")
    print(f"\n    {command}\n", flush=True)
    status, answer = localrun.send(
        ingress, key, headers, (run_dir / "sample-pull-request.json").read_bytes()
    )
    say(f"the ingress answered {status} {json.dumps(answer)}")
    if status not in (200, 202) or "session" not in answer:
        raise RuntimeError(f"the sample delivery was not accepted; see {run_dir / 'ingress.log'}")
    return follow(kubectl, timeout, answer["namespace"], answer["session"])


if __name__ == "__main__":
    sys.exit(main())
