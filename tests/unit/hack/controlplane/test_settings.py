"""settings: defaults, overrides, nonsense refused, port clashes refused with a clear message."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from controlplane.errors import ClusterError
from controlplane.settings import COMPONENTS, DEFAULT_PORTS, Settings

HOME = {"HOME": "/home/dev"}


def test_defaults_live_under_the_xdg_cache_and_use_the_documented_ports() -> None:
    s = Settings.from_env(HOME)
    assert s.cache == Path("/home/dev/.cache/ambient")
    assert s.state == Path("/home/dev/.cache/ambient/cluster")
    assert s.kubeconfig == Path("/home/dev/.cache/ambient/cluster/kubeconfig")
    assert (s.k8s_version, s.etcd_version, s.kwok_version) == ("v1.35.4", "v3.6.14", "v0.8.0")
    assert (s.etcd_port, s.etcd_peer_port, s.apiserver_port) == (23790, 23800, 16443)
    assert (s.kcm_port, s.scheduler_port, s.kwok_port) == (16257, 16259, 16280)
    assert s.apiserver_url == "https://127.0.0.1:16443"
    assert s.profiling is False
    s.check_ports()


def test_the_versions_match_the_build_script() -> None:
    """cluster.py finds binaries where hack/build-control-plane.sh puts them."""
    script = (Path(__file__).resolve().parents[4] / "hack" / "build-control-plane.sh").read_text()
    s = Settings.from_env(HOME)
    for variable, version in [
        ("K8S_VERSION", s.k8s_version),
        ("ETCD_VERSION", s.etcd_version),
        ("KWOK_VERSION", s.kwok_version),
    ]:
        assert f"{variable}:-{version}" in script


def test_every_variable_overrides_its_setting() -> None:
    env = {
        **HOME,
        "AMBIENT_CACHE": "/c",
        "AMBIENT_CLUSTER_DIR": "/tmp/cp-x",
        "K8S_VERSION": "v1.2.3",
        "ETCD_VERSION": "v9",
        "KWOK_VERSION": "v8",
        "AMBIENT_ETCD_PORT": "1",
        "AMBIENT_ETCD_PEER_PORT": "2",
        "AMBIENT_APISERVER_PORT": "3",
        "AMBIENT_KCM_PORT": "4",
        "AMBIENT_SCHEDULER_PORT": "5",
        "AMBIENT_KWOK_PORT": "65535",
        "AMBIENT_PROFILING": "1",
    }
    s = Settings.from_env(env)
    assert (s.cache, s.state) == (Path("/c"), Path("/tmp/cp-x"))
    assert (s.k8s_version, s.etcd_version, s.kwok_version) == ("v1.2.3", "v9", "v8")
    ports = (s.etcd_port, s.etcd_peer_port, s.apiserver_port, s.kcm_port, s.scheduler_port)
    assert ports == (1, 2, 3, 4, 5)
    assert s.kwok_port == 65535
    assert s.profiling is True
    assert s.binary("kubectl") == Path("/c/bin/kubernetes-v1.2.3/kubectl")
    assert s.binary("etcd") == Path("/c/bin/etcd-v9/etcd")
    assert s.binary("kwok") == Path("/c/bin/kwok-v8/kwok")


def test_xdg_cache_home_and_tilde_are_honoured() -> None:
    s = Settings.from_env({**HOME, "XDG_CACHE_HOME": "/x"})
    assert s.cache == Path("/x/ambient")
    s = Settings.from_env({**HOME, "AMBIENT_CACHE": "~/c", "AMBIENT_CLUSTER_DIR": "~/state"})
    assert (s.cache, s.state) == (Path("/home/dev/c"), Path("/home/dev/state"))


def test_empty_variables_mean_the_default() -> None:
    env = {**HOME, **dict.fromkeys(DEFAULT_PORTS, ""), "AMBIENT_CLUSTER_DIR": ""}
    assert Settings.from_env(env) == Settings.from_env(HOME)


@pytest.mark.parametrize("raw", ["abc", "0", "65536", "-1", "80x", " 80"])
def test_a_port_that_is_not_a_port_is_refused_naming_the_variable(raw: str) -> None:
    with pytest.raises(ClusterError) as caught:
        Settings.from_env({**HOME, "AMBIENT_KCM_PORT": raw})
    message = str(caught.value)
    assert f"AMBIENT_KCM_PORT={raw!r} is not a TCP port" in message
    assert "1 to 65535" in message


def test_two_components_on_one_port_are_refused_saying_which_and_what_to_do() -> None:
    s = Settings.from_env({**HOME, "AMBIENT_KWOK_PORT": "16443"})
    with pytest.raises(ClusterError) as caught:
        s.check_ports()
    message = str(caught.value)
    assert "AMBIENT_KWOK_PORT and AMBIENT_APISERVER_PORT are both 16443" in message
    assert "port of its own" in message


def test_the_etcd_peer_port_counts_as_a_port() -> None:
    s = replace(Settings.from_env(HOME), etcd_peer_port=23790)
    with pytest.raises(ClusterError, match="AMBIENT_ETCD_PEER_PORT and AMBIENT_ETCD_PORT"):
        s.check_ports()


def test_each_component_has_a_port_and_the_variable_that_moves_it() -> None:
    s = Settings.from_env(HOME)
    ports = dict(s.component_port(c) for c in COMPONENTS)
    assert ports == {
        23790: "AMBIENT_ETCD_PORT",
        16443: "AMBIENT_APISERVER_PORT",
        16257: "AMBIENT_KCM_PORT",
        16259: "AMBIENT_SCHEDULER_PORT",
        16280: "AMBIENT_KWOK_PORT",
    }
    assert len(s.ports()) == len(COMPONENTS) + 1


def test_paths_in_the_state_dir_and_the_lock_beside_it() -> None:
    s = Settings.from_env({**HOME, "AMBIENT_CLUSTER_DIR": "/tmp/cp-x"})
    assert s.log("etcd") == Path("/tmp/cp-x/logs/etcd.log")
    assert s.pidfile("kwok") == Path("/tmp/cp-x/run/kwok.pid")
    assert s.component_kubeconfig("kwok") == Path("/tmp/cp-x/pki/kwok.kubeconfig")
    assert s.lock == Path("/tmp/.cp-x.lock")


def test_an_unknown_binary_is_refused_listing_the_known_ones() -> None:
    with pytest.raises(ClusterError, match="unknown binary 'helm'; known: etcd, kwok, kube-"):
        Settings.from_env(HOME).binary("helm")


def test_each_profile_has_its_own_state_and_ports_so_they_run_side_by_side() -> None:
    run, test, bench = (
        Settings.from_env({**HOME, "AMBIENT_CLUSTER_PROFILE": name})
        for name in ("run", "test", "bench")
    )
    assert run == Settings.from_env(HOME)  # `make run` keeps the documented defaults
    assert test.state == Path("/home/dev/.cache/ambient/test-cluster")
    assert bench.state == Path("/home/dev/.cache/ambient/bench-cluster")
    assert test.apiserver_url == "https://127.0.0.1:16543"
    ports = [port for s in (run, test, bench) for port, _ in s.ports()]
    assert len(ports) == len(set(ports)), "two profiles would bind the same port"
    for s in (run, test, bench):
        s.check_ports()


def test_an_explicit_directory_or_port_wins_over_the_profile() -> None:
    env = {**HOME, "AMBIENT_CLUSTER_PROFILE": "test", "AMBIENT_CLUSTER_DIR": "/tmp/cp"}
    s = Settings.from_env({**env, "AMBIENT_APISERVER_PORT": "26443"})
    assert s.state == Path("/tmp/cp")
    assert s.apiserver_port == 26443
    assert s.etcd_port == DEFAULT_PORTS["AMBIENT_ETCD_PORT"] + 100


def test_an_unknown_profile_is_refused_with_the_known_ones() -> None:
    with pytest.raises(ClusterError, match="use one of run, test, bench"):
        Settings.from_env({**HOME, "AMBIENT_CLUSTER_PROFILE": "prod"})
