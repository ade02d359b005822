"""cli: arguments, and errors that say what to do (none of these start anything)."""

from __future__ import annotations

from pathlib import Path

import pytest
from controlplane.cli import main, parse_args, report
from controlplane.errors import ClusterError


def test_the_commands_and_their_arguments() -> None:
    assert parse_args(["up"]).command == "up"
    assert parse_args(["down"]).purge is False
    assert parse_args(["down", "--purge"]).purge is True
    assert parse_args(["bin", "kubectl"]).name == "kubectl"
    with pytest.raises(SystemExit):
        parse_args([])


def test_a_bad_port_fails_before_anything_starts(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.setenv("AMBIENT_CLUSTER_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("AMBIENT_APISERVER_PORT", "http")
    assert main(["up"]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert "error: AMBIENT_APISERVER_PORT='http' is not a TCP port" in err
    assert not (tmp_path / "state").exists()


def test_kubeconfig_and_bin_print_the_path_and_say_when_it_is_missing(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.setenv("AMBIENT_CACHE", str(tmp_path))
    monkeypatch.setenv("AMBIENT_CLUSTER_DIR", str(tmp_path / "state"))
    assert main(["kubeconfig"]) == 1
    out, err = capsys.readouterr()
    assert out == f"{tmp_path / 'state' / 'kubeconfig'}\n"
    assert "run `python hack/cluster.py up`" in err
    assert main(["bin", "kubectl"]) == 1
    out, err = capsys.readouterr()
    assert out.strip().endswith("/kubectl")
    assert "run hack/build-control-plane.sh" in err
    assert main(["bin", "helm"]) == 1
    assert "unknown binary 'helm'" in capsys.readouterr().err


def test_a_failure_with_a_log_shows_its_tail_and_how_to_start_over(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    log = tmp_path / "kwok.log"
    log.write_text("".join(f"line {i}\n" for i in range(100)))
    report(ClusterError("kwok exited during start-up", log))
    err = capsys.readouterr().err
    assert "error: kwok exited during start-up" in err
    assert "line 99" in err
    assert "line 74" not in err
    assert "python hack/cluster.py down && python hack/cluster.py up" in err
