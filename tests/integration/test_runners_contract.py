"""The runner contract on the real API server and a real local S3 server.

The script runner runs as a local process, as its pod would run it: the context file the
operator's builder writes, the Session's own ServiceAccount token (TokenRequest through
kubectl create token), and boto3 against moto's S3 server. kwok moves the pod; the runner
process writes the status.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import socket
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

from ambient.crds import naming
from ambient.crds.models import Session
from ambient.operator.sessions import builders
from ambient.runners import registry as runner_registry
from ambient.runners.sdk.artifacts import PvcStore
from ambient.runners.sdk.contract import (
    BUDGET_EXCEEDED,
    RUNNER_ERROR,
    ArtifactCapError,
    Context,
    termination_message,
)
from ambient.runners.sdk.runtime import Runner
from ambient.runners.sdk.status_client import ApiError, Connection, StatusClient

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
RUNNERS_BIN = ROOT / ".venv-runners" / "bin"
BUCKET = "ambient-artifacts"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """moto's S3 server as a real process, with one bucket."""
    if not (RUNNERS_BIN / "python").exists():
        pytest.fail("the runner virtualenv is missing: run `make runners-venv`")
    port = _free_port()
    log = (tmp_path_factory.mktemp("s3") / "moto.log").open("wb")
    proc = subprocess.Popen(
        [str(RUNNERS_BIN / "python"), "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            urllib.request.urlopen(url, timeout=1).close()
            break
        except OSError:
            time.sleep(0.1)
    urllib.request.urlopen(urllib.request.Request(f"{url}/{BUCKET}", method="PUT")).close()
    yield url
    proc.terminate()
    proc.wait(timeout=20)


S3_ENV = {
    "AWS_ACCESS_KEY_ID": "test",
    "AWS_SECRET_ACCESS_KEY": "test",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def _s3_get(url: str, key: str) -> bytes:
    """Read an object back through boto3 (the runner venv has it; see the Makefile)."""
    code = (
        "import boto3,sys;"
        f"sys.stdout.buffer.write(boto3.client('s3').get_object(Bucket={BUCKET!r},"
        f"Key={key!r})['Body'].read())"
    )
    return subprocess.run(
        [str(RUNNERS_BIN / "python"), "-c", code],
        env={**S3_ENV, "AWS_ENDPOINT_URL_S3": url, "PATH": os.environ["PATH"]},
        capture_output=True,
        check=True,
        timeout=60,
    ).stdout


def _api(cluster: Any, tmp: Path) -> tuple[str, Path]:
    """The API server's URL and CA file from the test kubeconfig."""
    kc = yaml.safe_load(Path(cluster.kubeconfig).read_text())
    c = kc["clusters"][0]["cluster"]
    ca = tmp / "ca.crt"
    if "certificate-authority-data" in c:
        ca.write_bytes(base64.b64decode(c["certificate-authority-data"]))
    else:
        ca.write_bytes(Path(c["certificate-authority"]).read_bytes())
    return c["server"], ca


def _runner_token(cluster: Any, namespace: str, session: str, tmp: Path) -> Path:
    """A token for the Session's own ServiceAccount (TokenRequest API), once it exists."""
    sa = naming.runner_service_account(session)
    cluster.wait_for(
        "the runner ServiceAccount",
        lambda: cluster.kubectl("get", "sa", sa, "-n", namespace, check=False).returncode == 0,
    )
    token = cluster.kubectl("create", "token", sa, "-n", namespace, "--duration=10m").stdout
    path = tmp / f"{session}.token"
    path.write_text(token.strip())
    return path


def _context_file(cluster: Any, namespace: str, name: str, tmp: Path) -> Path:
    """The context file exactly as the operator's builder makes it for the pod."""
    session = Session.model_validate(cluster.session(namespace, name))
    runner = runner_registry.resolve(
        runner_registry.load(), session.spec.framework.type, session.spec.framework.version, ""
    )
    context = builders.runner_context(session, runner, naming.job_name(name, 1))
    path = tmp / f"{name}.json"
    path.write_text(builders.context_json(context))
    return path


def _session(name: str, config: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "apiVersion": "ambient.ai/v1alpha1",
        "kind": "Session",
        "metadata": {"name": name, "annotations": extra.pop("annotations", {})},
        "spec": {
            "trigger": {"source": "manual", "event": "test"},
            "framework": {"type": "script", "config": config},
            "policy": extra.pop("policy", {}),
            "artifacts": {
                "storage": extra.pop("storage", {"type": "s3", "location": BUCKET + "/runs"})
            },
        },
    }


def _run(
    cluster: Any,
    namespace: str,
    name: str,
    tmp: Path,
    s3_url: str,
    *,
    framework: str = "script",
    extra_env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    server, ca = _api(cluster, tmp)
    env = {
        "PATH": os.environ["PATH"],
        "AMBIENT_CONTEXT_FILE": str(_context_file(cluster, namespace, name, tmp)),
        "AMBIENT_API_SERVER": server,
        "AMBIENT_API_CA_FILE": str(ca),
        "AMBIENT_API_TOKEN_FILE": str(_runner_token(cluster, namespace, name, tmp)),
        "AMBIENT_TERMINATION_LOG": str(tmp / f"{name}.termination"),
        "AWS_ENDPOINT_URL_S3": s3_url,
        **S3_ENV,
        **(extra_env or {}),
    }
    return subprocess.run(
        [str(RUNNERS_BIN / "ambient-runner"), framework],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_script_runner_leaves_completed_session_with_artifacts_usage_history(
    cluster, operator, namespace, s3, tmp_path
):
    out = tmp_path / "out"
    config = {
        "command": [
            "sh",
            "-c",
            f"mkdir -p {out}/logs && echo hello > {out}/result.txt "
            f"&& echo done > {out}/logs/run.log",
        ],
        "outputDir": str(out),
        # Priced by the registry's table ($3/$15 per million): 0.30 + 0.12. The author's
        # own cost is ignored.
        "usage": {
            "model": "claude-sonnet-4-5",
            "inputTokens": 100_000,
            "outputTokens": 8_000,
            "cost": "0.01",
        },
    }
    cluster.apply(
        _session("works", config, policy={"modelConstraints": {"budget": "5.00"}}), namespace
    )
    proc = _run(cluster, namespace, "works", tmp_path, s3)
    assert proc.returncode == 0, proc.stderr

    body = cluster.wait_phase(namespace, "works", "Completed")
    status = body["status"]
    assert status["usage"] == {
        "inputTokens": 100_000,
        "outputTokens": 8_000,
        "cost": "0.42",
        "model": "claude-sonnet-4-5",
    }
    generated = {a["location"]: a for a in status["artifacts"]["generated"]}
    key = f"runs/{namespace}/works/result.txt"
    assert set(generated) == {
        f"s3://{BUCKET}/{key}",
        f"s3://{BUCKET}/runs/{namespace}/works/logs/run.log",
    }
    result = generated[f"s3://{BUCKET}/{key}"]
    stored = _s3_get(s3, key)
    assert stored == b"hello\n"
    assert result["size"] == 6
    assert result["checksum"] == "sha256:" + hashlib.sha256(b"hello\n").hexdigest()
    assert result["createdAt"].endswith("Z")
    history = status["history"]
    assert [e["seq"] for e in history] == list(range(len(history)))
    runner_events = [e["event"] for e in history if e["id"].startswith("runner:")]
    assert runner_events == ["ScriptStarted", "ArtifactStored", "ArtifactStored", "RunnerSucceeded"]
    operator_events = [e["event"] for e in history if not e["id"].startswith("runner:")]
    assert operator_events[0] == "SessionCreated"
    assert operator_events[-1] == "WorkloadSucceeded"

    # The identity the runner used is the Session's, owned by it (garbage-collected with it).
    sa = naming.runner_service_account("works")
    got = json.loads(cluster.kubectl("get", "role", sa, "-n", namespace, "-o", "json").stdout)
    assert got["metadata"]["ownerReferences"][0]["uid"] == body["metadata"]["uid"]
    assert {tuple(r["resourceNames"]) for r in got["rules"]} == {("works",)}
    job = cluster.batch.read_namespaced_job(naming.job_name("works", 1), namespace)
    assert job.spec.template.spec.service_account_name == sa


def test_budget_exceeded_fails_the_session_with_that_reason(
    cluster, operator, namespace, s3, tmp_path
):
    expected = termination_message(BUDGET_EXCEEDED, "spent 2.50 of the Session's budget 1.00")
    config = {
        "command": ["true"],
        "outputDir": str(tmp_path / "out"),
        # 166,667 output tokens at $15 per million: 2.500005
        "usage": {"model": "claude-sonnet-4-5", "inputTokens": 0, "outputTokens": 166_667},
    }
    # kwok cannot run the container; the pod ends the way the runner below ends.
    cluster.apply(
        _session(
            "spendy",
            config,
            policy={"modelConstraints": {"budget": "1.00"}},
            annotations={
                "sim.ambient.ai/exit-code": "3",
                "sim.ambient.ai/message": expected,
                "sim.ambient.ai/duration": "2s",
            },
        ),
        namespace,
    )
    proc = _run(cluster, namespace, "spendy", tmp_path, s3)
    assert proc.returncode == 3, proc.stderr
    assert (tmp_path / "spendy.termination").read_text() == expected

    body = cluster.wait_phase(namespace, "spendy", "Failed")
    assert body["status"]["reason"] == "BudgetExceeded"
    assert "spent 2.50 of the Session's budget 1.00" in body["status"]["message"]
    assert body["status"]["usage"]["cost"] == "2.50"
    assert any(
        e["id"] == "runner:spendy-a1/failed" and e["data"]["reason"] == BUDGET_EXCEEDED
        for e in body["status"]["history"]
    )


def test_crashing_command_fails_the_session_with_its_message(
    cluster, operator, namespace, s3, tmp_path
):
    expected = termination_message(RUNNER_ERROR, "the command exited with code 7")
    cluster.apply(
        _session(
            "crashes",
            {"command": ["sh", "-c", "exit 7"], "outputDir": str(tmp_path / "o")},
            annotations={
                "sim.ambient.ai/exit-code": "7",
                "sim.ambient.ai/message": expected,
                "sim.ambient.ai/duration": "2s",
            },
        ),
        namespace,
    )
    proc = _run(cluster, namespace, "crashes", tmp_path, s3)
    assert proc.returncode == 7
    assert (tmp_path / "crashes.termination").read_text() == expected
    body = cluster.wait_phase(namespace, "crashes", "Failed")
    assert body["status"]["reason"] == RUNNER_ERROR
    assert body["status"]["message"] == "runner exited with code 7: the command exited with code 7"


def _in_process_runner(
    cluster: Any, namespace: str, name: str, token_for: str, tmp: Path
) -> Runner:
    server, ca = _api(cluster, tmp)
    token = _runner_token(cluster, namespace, token_for, tmp)
    context = Context.parse(_context_file(cluster, namespace, name, tmp).read_text())
    client = StatusClient(Connection(server, token, ca), namespace, name)
    return Runner(context, client, termination_log=tmp / "term")


def test_artifact_past_the_cap_is_refused(cluster, operator, namespace, tmp_path, monkeypatch):
    cluster.apply(
        _session("full", {"command": ["true"]}, storage={"type": "pvc", "location": "claim"}),
        namespace,
    )
    monkeypatch.setenv("AMBIENT_PVC_MOUNT", str(tmp_path / "pvc"))
    runner = _in_process_runner(cluster, namespace, "full", "full", tmp_path)
    assert isinstance(runner.store, PvcStore)
    f = tmp_path / "a.txt"
    f.write_text("x")
    # 100 artifacts through the contract (references keep it fast), then one more.
    for i in range(100):
        runner.reference(f"https://example.invalid/{i}")
    with pytest.raises(ArtifactCapError, match="already lists 100 artifacts"):
        runner.artifact("one-too-many.txt", f)
    body = cluster.session(namespace, "full")
    assert len(body["status"]["artifacts"]["generated"]) == 100
    assert not (tmp_path / "pvc" / namespace / "full" / "one-too-many.txt").exists()


def test_runner_cannot_write_another_sessions_status(cluster, operator, namespace, tmp_path):
    for name in ("mine", "theirs"):
        cluster.apply(_session(name, {"command": ["true"]}), namespace)
    # The runner of "mine" aims its own token at "theirs".
    runner = _in_process_runner(cluster, namespace, "theirs", "mine", tmp_path)
    with pytest.raises(ApiError) as denied:
        runner.history("Hijack", {"x": "y"})
    assert denied.value.status == 403
    before = cluster.session(namespace, "theirs")
    body = {
        "apiVersion": "ambient.ai/v1alpha1",
        "kind": "Session",
        "metadata": {
            "name": "theirs",
            "namespace": namespace,
            "resourceVersion": before["metadata"]["resourceVersion"],
        },
        "status": before.get("status", {}),
    }
    with pytest.raises(ApiError) as put_denied:
        runner.client._request("PUT", runner.client.path + "/status", body)
    assert put_denied.value.status == 403
    after = cluster.session(namespace, "theirs")
    history = after.get("status", {}).get("history", [])
    assert not any(e["id"].startswith("runner:") for e in history)
    # and the same token works on its own Session
    own = _in_process_runner(cluster, namespace, "mine", "mine", tmp_path)
    own.history("Hello", {"x": "y"}, key="hello")
    assert any(
        e["id"] == "runner:mine-a1/hello"
        for e in cluster.session(namespace, "mine")["status"]["history"]
    )


def test_month_to_date_spend_rolls_up_into_the_namespace_policy(
    cluster, operator, namespace, s3, tmp_path
):
    config = {
        "command": ["true"],
        "outputDir": str(tmp_path / "out"),
        # 83,333 output tokens at $15 per million: 1.249995
        "usage": {"model": "claude-sonnet-4-5", "inputTokens": 0, "outputTokens": 83_333},
    }
    cluster.apply(_session("spend", config), namespace)
    assert _run(cluster, namespace, "spend", tmp_path, s3).returncode == 0
    cluster.apply(
        {
            "apiVersion": "ambient.ai/v1alpha1",
            "kind": "NamespacePolicy",
            "metadata": {"name": "policy"},
            "spec": {"models": {"budget": {"monthly": "100.00"}}},
        },
        namespace,
    )

    def rolled_up() -> dict[str, Any] | None:
        body = cluster.custom.get_namespaced_custom_object(
            "ambient.ai", "v1alpha1", namespace, "namespacepolicies", "policy"
        )
        status = body.get("status") or {}
        return status if status.get("monthToDateSpend") == "1.25" else None

    status = cluster.wait_for("the month-to-date spend", rolled_up)
    assert status["month"] == time.strftime("%Y-%m", time.gmtime())


def test_a_foreign_service_account_under_the_runner_name_blocks_the_job(
    cluster, operator, namespace
):
    sa = naming.runner_service_account("squatted")
    cluster.core.create_namespaced_service_account(namespace, {"metadata": {"name": sa}})
    cluster.apply(_session("squatted", {"command": ["true"]}), namespace)

    def warned() -> list[str]:
        events = cluster.core.list_namespaced_event(
            namespace, field_selector="involvedObject.name=squatted,involvedObject.kind=Session"
        )
        return [e.message for e in events.items if e.reason == "RunnerIdentityConflict"]

    messages = cluster.wait_for("the identity conflict event", warned)
    assert f"ServiceAccount {sa} exists and is not owned by this Session" in messages[0]
    assert cluster.jobs(namespace) == []
    assert cluster.session(namespace, "squatted").get("status", {}).get("phase") != "Running"
