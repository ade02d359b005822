"""flags: each component's command line, from settings alone."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from controlplane.flags import command_line, component_env
from controlplane.settings import COMPONENTS, STAGES_FILE, Settings

ENV = {
    "HOME": "/home/dev",
    "AMBIENT_CACHE": "/c",
    "AMBIENT_CLUSTER_DIR": "/s",
    "AMBIENT_ETCD_PORT": "33790",
    "AMBIENT_ETCD_PEER_PORT": "33800",
    "AMBIENT_APISERVER_PORT": "26443",
    "AMBIENT_KCM_PORT": "26257",
    "AMBIENT_SCHEDULER_PORT": "26259",
    "AMBIENT_KWOK_PORT": "26280",
}


@pytest.fixture
def settings() -> Settings:
    return Settings.from_env(ENV)


def test_each_command_line_starts_with_the_cached_binary(settings: Settings) -> None:
    for component in COMPONENTS:
        assert command_line(settings, component)[0] == str(settings.binary(component))


def test_every_listener_is_on_loopback_on_its_own_port(settings: Settings) -> None:
    for component in COMPONENTS:
        argv = " ".join(command_line(settings, component))
        port, _ = settings.component_port(component)
        assert f"127.0.0.1:{port}" in argv or f"--secure-port={port}" in argv
        assert "0.0.0.0" not in argv


def test_etcd_is_a_single_disposable_member(settings: Settings) -> None:
    argv = command_line(settings, "etcd")[1:]
    assert "--data-dir=/s/etcd" in argv
    assert "--listen-client-urls=http://127.0.0.1:33790" in argv
    assert "--advertise-client-urls=http://127.0.0.1:33790" in argv
    assert "--listen-peer-urls=http://127.0.0.1:33800" in argv
    assert "--initial-cluster=default=http://127.0.0.1:33800" in argv
    assert "--initial-cluster-state=new" in argv
    assert "--unsafe-no-fsync=true" in argv


def test_the_apiserver_uses_our_etcd_certs_and_rbac(settings: Settings) -> None:
    argv = command_line(settings, "kube-apiserver")[1:]
    assert argv == [
        "--bind-address=127.0.0.1",
        "--advertise-address=127.0.0.1",
        "--secure-port=26443",
        "--etcd-servers=http://127.0.0.1:33790",
        "--cert-dir=/s/pki/apiserver-generated",
        "--tls-cert-file=/s/pki/apiserver.crt",
        "--tls-private-key-file=/s/pki/apiserver.key",
        "--client-ca-file=/s/pki/ca.crt",
        "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
        "--service-account-key-file=/s/pki/sa.pub",
        "--service-account-signing-key-file=/s/pki/sa.key",
        "--authorization-mode=Node,RBAC",
        "--service-cluster-ip-range=10.96.0.0/16",
        "--allow-privileged=true",
        "--endpoint-reconciler-type=none",
        "--admission-control-config-file=/s/pki/admission-config.yaml",
        "--feature-gates=MutatingAdmissionPolicy=true",
        "--runtime-config=admissionregistration.k8s.io/v1beta1=true",
        "--profiling=false",
    ]


def test_ambient_profiling_turns_on_the_apiserver_profiler() -> None:
    argv = command_line(Settings.from_env({**ENV, "AMBIENT_PROFILING": "1"}), "kube-apiserver")
    assert "--profiling=true" in argv
    argv = command_line(Settings.from_env({**ENV, "AMBIENT_PROFILING": "yes"}), "kube-apiserver")
    assert "--profiling=false" in argv


def test_the_controller_manager_signs_with_our_ca_and_is_tuned_for_bursts(
    settings: Settings,
) -> None:
    argv = command_line(settings, "kube-controller-manager")[1:]
    assert argv[:5] == [
        "--kubeconfig=/s/pki/kube-controller-manager.kubeconfig",
        "--bind-address=127.0.0.1",
        "--secure-port=26257",
        "--leader-elect=false",
        "--profiling=false",
    ]
    for flag in [
        "--controllers=*",
        "--use-service-account-credentials=true",
        "--root-ca-file=/s/pki/ca.crt",
        "--service-account-private-key-file=/s/pki/sa.key",
        "--cluster-signing-cert-file=/s/pki/ca.crt",
        "--cluster-signing-key-file=/s/pki/ca.key",
        "--cluster-name=ambient-local",
        "--kube-api-qps=200",
        "--kube-api-burst=400",
        "--concurrent-job-syncs=20",
        "--concurrent-gc-syncs=40",
        # kwok's leases come late under load: a fake node must not go NotReady for it.
        "--node-monitor-grace-period=1h",
    ]:
        assert flag in argv


def test_the_scheduler_serves_healthz_on_its_port(settings: Settings) -> None:
    argv = command_line(settings, "kube-scheduler")[1:]
    assert "--kubeconfig=/s/pki/kube-scheduler.kubeconfig" in argv
    assert "--secure-port=26259" in argv
    assert "--kube-api-qps=200" in argv
    # /healthz is anonymous; these would only make the scheduler log errors (no front proxy).
    assert not any(a.startswith("--authentication-kubeconfig") for a in argv)


def test_kwok_manages_only_the_nodes_annotated_fake(settings: Settings) -> None:
    argv = command_line(settings, "kwok")[1:]
    assert "--manage-all-nodes=false" in argv
    assert "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake" in argv
    assert f"--config={STAGES_FILE}" in argv
    assert "--server-address=127.0.0.1:26280" in argv
    assert STAGES_FILE.is_file()


def test_kwok_gets_a_work_dir_in_the_state_and_the_others_the_environment_as_is(
    settings: Settings,
) -> None:
    base = {"PATH": "/bin"}
    assert component_env(settings, "kwok", base) == {"PATH": "/bin", "KWOK_WORKDIR": "/s/kwok"}
    assert component_env(settings, "etcd", base) == base
    assert base == {"PATH": "/bin"}


def test_command_lines_depend_on_the_settings_alone(settings: Settings) -> None:
    again = Settings.from_env(dict(ENV))
    for component in COMPONENTS:
        assert command_line(settings, component) == command_line(again, component)
    assert Path(command_line(settings, "kwok")[0]) == Path("/c/bin/kwok-v0.8.0/kwok")


def test_kwok_plays_many_pod_stages_at_once() -> None:
    # At kwok's default of 4, a 10,000-pod burst waited on the fake kubelets (each stage a
    # PATCH against a loaded API server), not on what a benchmark measures.
    docs = [d for d in yaml.safe_load_all(STAGES_FILE.read_text()) if d]
    configs = [d for d in docs if d["kind"] == "KwokConfiguration"]
    assert len(configs) == 1
    assert configs[0]["apiVersion"] == "config.kwok.x-k8s.io/v1alpha1"
    assert configs[0]["options"]["podPlayStageParallelism"] >= 16
    assert {d["kind"] for d in docs} == {"KwokConfiguration", "Stage"}
