"""Each component's command line and environment (pure); every listener is on loopback."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from .settings import (
    CLUSTER_NAME,
    KWOK_NODE_ANNOTATION,
    NODE_IP,
    POD_CIDR,
    SA_ISSUER,
    SERVICE_CIDR,
    STAGES_FILE,
    Settings,
)


def command_line(settings: Settings, component: str) -> list[str]:
    """The argv for one component: its cached binary, then its flags."""
    return [str(settings.binary(component)), *BUILDERS[component](settings)]


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
        # Presents pki/webhook-client.crt to admission webhooks, so a webhook can require
        # a client certificate from pki/webhook-client-ca.crt (the API server's alone).
        f"--admission-control-config-file={s.admission_config}",
        # MutatingAdmissionPolicy is beta and off by default in 1.35: on here, the
        # admission fast path stamps a Session's creator inside the API server
        # (webhooks/admission/fastpath.py); the chart falls back to the webhook without it.
        "--feature-gates=MutatingAdmissionPolicy=true",
        "--runtime-config=admissionregistration.k8s.io/v1beta1=true",
        # AMBIENT_PROFILING=1 serves /debug/pprof, for finding where the API server's CPU
        # goes under a benchmark (`kubectl get --raw /debug/pprof/profile?seconds=20`).
        f"--profiling={'true' if s.profiling else 'false'}",
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
        # kwok plays the fake nodes' kubelet. Starved of CPU in a 10,000-pod burst on two
        # cores it renewed their leases late, the node lifecycle controller marked them
        # NotReady and evicted their pods, and 2,887 runner Jobs failed (issue 19). A
        # fake node's health means nothing here: never judge it by a late lease.
        "--node-monitor-grace-period=1h",
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


BUILDERS: dict[str, Callable[[Settings], list[str]]] = {
    "etcd": etcd_args,
    "kube-apiserver": apiserver_args,
    "kube-controller-manager": controller_manager_args,
    "kube-scheduler": scheduler_args,
    "kwok": kwok_args,
}


def component_env(settings: Settings, component: str, base: Mapping[str, str]) -> dict[str, str]:
    """kwok would also load ~/.kwok/kwok.yaml; point its work dir at our state instead."""
    env = dict(base)
    if component == "kwok":
        env["KWOK_WORKDIR"] = str(settings.state / "kwok")
    return env
