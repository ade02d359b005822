"""The langgraph, crewai, agno and n8n runners, each run as in its pod: its own process in
its own venv (the image's dependency tree), the real API server, the Session's own
ServiceAccount token, the context file the operator's builder writes, artifacts into a
real S3 server (moto's). The real framework runs; only the model is replaced, by each
library's own fake or scripted model (tests/fixtures/agents/). n8n is the real n8n
(npm, pinned; hack/install-n8n.sh), its workflows imported through its CLI.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml

from ambient.crds import naming
from ambient.crds.models import Session
from ambient.operator.sessions import builders
from ambient.runners import registry as runner_registry
from ambient.runners.sdk.contract import BUDGET_EXCEEDED, RUNNER_ERROR

from .conftest import free_port

# The operator creates each Session's ServiceAccount, whose token the runner uses.
pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("operator")]

ROOT = Path(__file__).resolve().parents[2]
AGENTS = ROOT / "tests" / "fixtures" / "agents"
S3_ENV = {
    "AWS_ACCESS_KEY_ID": "test",
    "AWS_SECRET_ACCESS_KEY": "test",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def _venv(framework: str) -> Path:
    """The framework's own venv (make runners-venv), as its image has its own tree."""
    name = ".venv-runners" if framework == "n8n" else f".venv-{framework}"
    runner = ROOT / name / "bin" / "ambient-runner"
    if not runner.exists():
        pytest.fail(f"{name} is missing: run `make runners-venv`")
    return runner


@pytest.fixture
def bucket(s3_endpoint: str) -> str:
    name = f"fw-{os.urandom(4).hex()}"
    boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1", **_keys()).create_bucket(
        Bucket=name
    )
    return name


def _keys() -> dict[str, str]:
    return {"aws_access_key_id": "test", "aws_secret_access_key": "test"}


def _s3_text(endpoint: str, bucket: str, key: str) -> str:
    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", **_keys())
    return str(client.get_object(Bucket=bucket, Key=key)["Body"].read().decode())


def _session(
    name: str, framework: str, config: dict[str, Any], bucket: str, **policy: Any
) -> dict[str, Any]:
    return {
        "apiVersion": "ambient.ai/v1alpha1",
        "kind": "Session",
        "metadata": {"name": name},
        "spec": {
            "trigger": {
                "source": "github",
                "event": "issues.opened",
                "payload": {"issue": {"number": 7, "title": "flaky test"}},
            },
            "framework": {"type": framework, "config": config},
            "policy": policy,
            "artifacts": {"storage": {"type": "s3", "location": f"{bucket}/runs"}},
        },
    }


@dataclass
class Harness:
    """One test's namespace, bucket and folder, and how to run a runner in them."""

    cluster: Any
    namespace: str
    s3: str
    bucket: str
    tmp: Path

    def apply(self, name: str, framework: str, config: dict[str, Any], **policy: Any) -> None:
        self.cluster.apply(_session(name, framework, config, self.bucket, **policy), self.namespace)

    def run(
        self, name: str, framework: str, extra_env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        return _run(self.cluster, self.namespace, name, self.tmp, self.s3, framework, extra_env)

    def session(self, name: str) -> dict[str, Any]:
        return dict(self.cluster.session(self.namespace, name))

    def stored(self, name: str, file: str) -> str:
        return _s3_text(self.s3, self.bucket, f"runs/{self.namespace}/{name}/{file}")

    def termination(self, name: str) -> dict[str, Any]:
        return dict(json.loads((self.tmp / f"{name}.termination").read_text()))


@pytest.fixture
def fw(cluster: Any, namespace: str, s3_endpoint: str, bucket: str, tmp_path: Path) -> Harness:
    return Harness(cluster, namespace, s3_endpoint, bucket, tmp_path)


def _run(  # noqa: PLR0917 - the pod's inputs, one each
    cluster: Any,
    namespace: str,
    name: str,
    tmp: Path,
    s3_endpoint: str,
    framework: str,
    extra_env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """The runner as its pod runs it: its context file, its Session's token, its env."""
    kc = yaml.safe_load(Path(cluster.kubeconfig).read_text())["clusters"][0]["cluster"]
    ca = tmp / "ca.crt"
    if "certificate-authority-data" in kc:
        ca.write_bytes(base64.b64decode(kc["certificate-authority-data"]))
    else:
        ca.write_bytes(Path(kc["certificate-authority"]).read_bytes())
    sa = naming.runner_service_account(name)
    cluster.wait_for(
        "the runner ServiceAccount",
        lambda: cluster.kubectl("get", "sa", sa, "-n", namespace, check=False).returncode == 0,
    )
    token = tmp / f"{name}.token"
    token.write_text(
        cluster.kubectl("create", "token", sa, "-n", namespace, "--duration=10m").stdout.strip()
    )
    session = Session.model_validate(cluster.session(namespace, name))
    resolved = runner_registry.resolve(
        runner_registry.load(), session.spec.framework.type, session.spec.framework.version, ""
    )
    context = tmp / f"{name}.json"
    context.write_text(
        builders.context_json(builders.runner_context(session, resolved, naming.job_name(name, 1)))
    )
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp),
        "AMBIENT_CONTEXT_FILE": str(context),
        "AMBIENT_API_SERVER": kc["server"],
        "AMBIENT_API_CA_FILE": str(ca),
        "AMBIENT_API_TOKEN_FILE": str(token),
        "AMBIENT_TERMINATION_LOG": str(tmp / f"{name}.termination"),
        # As a ConfigMap mounted at /opt/ambient/agent would provide the module.
        "AMBIENT_AGENT_PATH": str(AGENTS),
        "AWS_ENDPOINT_URL_S3": s3_endpoint,
        **S3_ENV,
        **(extra_env or {}),
    }
    return subprocess.run(
        [str(_venv(framework)), resolved.command[-1]],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=tmp,
    )


def _runner_entries(body: dict[str, Any]) -> list[dict[str, Any]]:
    return [e for e in body["status"]["history"] if e["id"].startswith("runner:")]


def test_langgraph_runs_the_graph_node_by_node(fw):
    config = {"graph": "lg_graph:build", "prompt": "fix the flaky test in issue 7"}
    fw.apply("graph", "langgraph", config)
    proc = fw.run("graph", "langgraph")
    assert proc.returncode == 0, proc.stderr

    body = fw.session("graph")
    entries = _runner_entries(body)
    assert [e["event"] for e in entries] == [
        "LangGraphStarted",
        "GraphNodeUpdated",
        "GraphNodeUpdated",
        "ArtifactStored",
        "ArtifactStored",
        "RunnerSucceeded",
    ]
    assert [e["data"]["node"] for e in entries[1:3]] == ["plan", "act"]
    assert "plan: read the failing test" in entries[1]["data"]["update"]
    # The trigger reached the graph's state; the last message is the result.
    assert entries[-1]["data"]["summary"] == "done: the test is fixed (from github)"
    # Tokens from the fake model's usage_metadata, through LangChain's usage callback.
    usage = body["status"]["usage"]
    assert (usage["inputTokens"], usage["outputTokens"], usage["model"]) == (
        320,
        70,
        "fake-chat-1",
    )
    steps = fw.stored("graph", "steps.jsonl").splitlines()
    assert [json.loads(s)["node"] for s in steps] == ["plan", "act"]
    state = json.loads(fw.stored("graph", "output.json"))
    # The task message carried the prompt and the trigger's payload.
    first = state["messages"][0]
    assert "fix the flaky test in issue 7" in str(first)
    assert "flaky test" in str(first) and "issues.opened" in str(first)


def test_langgraph_node_error_fails_the_session_with_its_message(fw):
    fw.apply("boom", "langgraph", {"graph": "lg_graph:broken", "prompt": "x"})
    proc = fw.run("boom", "langgraph")
    assert proc.returncode == 1
    term = fw.termination("boom")
    assert term["reason"] == RUNNER_ERROR
    assert term["message"] == "LangGraph failed: ValueError: the repository has no tests"
    failed = _runner_entries(fw.session("boom"))[-1]
    assert failed["event"] == "RunnerFailed"


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("lg_graph:not_a_graph", "is a builtins.dict, not a LangGraph graph"),
        ("no_such_module:graph", "cannot import module 'no_such_module'"),
        ("lg_graph", "is not 'module:attribute'"),
    ],
)
def test_langgraph_bad_target_is_a_clear_error(fw, target, message):
    fw.apply("bad", "langgraph", {"graph": target, "prompt": "x"})
    proc = fw.run("bad", "langgraph")
    assert proc.returncode == 1
    assert message in fw.termination("bad")["message"]
    events = [e["event"] for e in _runner_entries(fw.session("bad"))]
    assert "RunnerSucceeded" not in events and events[-1] == "RunnerFailed"


def test_crewai_kicks_off_the_crew_and_records_each_task(fw):
    config = {"crew": "crew:build", "prompt": "fix the flaky test"}
    fw.apply("crew", "crewai", config)
    proc = fw.run("crew", "crewai")
    assert proc.returncode == 0, proc.stderr

    body = fw.session("crew")
    entries = _runner_entries(body)
    tasks = [e for e in entries if e["event"] == "CrewTaskCompleted"]
    assert [(t["data"]["task"], t["data"]["agent"]) for t in tasks] == [
        ("plan", "engineer"),
        ("work", "engineer"),
    ]
    assert tasks[0]["data"]["output"] == "plan: rerun the flaky test"
    assert entries[-1]["event"] == "RunnerSucceeded"
    assert entries[-1]["data"]["summary"] == "the flaky test is fixed"
    # CrewAI's own usage metrics: two calls of 300 prompt and 50 completion tokens.
    usage = body["status"]["usage"]
    assert (usage["inputTokens"], usage["outputTokens"], usage["model"]) == (
        600,
        100,
        "scripted-crew-1",
    )
    output = json.loads(fw.stored("crew", "output.json"))
    assert output["raw"] == "the flaky test is fixed"
    # The inputs were interpolated into the crew's texts: the prompt and the trigger.
    assert "fix the flaky test" in output["tasks_output"][0]["description"]
    assert "issues.opened" in output["tasks_output"][0]["description"]


def test_agno_runs_the_agent_with_its_tool_calls_usage_and_cost(fw):
    config = {"agent": "agno_agent:build", "prompt": "count the lines"}
    fw.apply("agent", "agno", config)
    proc = fw.run("agent", "agno")
    assert proc.returncode == 0, proc.stderr

    body = fw.session("agent")
    entries = _runner_entries(body)
    events = [e["data"].get("event") for e in entries if e["event"] == "AgnoRunEvent"]
    assert events[0] == "RunStarted" and events[-1] == "RunCompleted"
    assert "ToolCallStarted" in events and "ToolCallCompleted" in events
    assert not any(e.endswith("Content") for e in events)  # streamed text is not a step
    tool = next(e for e in entries if e["data"].get("event") == "ToolCallCompleted")
    assert (tool["data"]["tool"], tool["data"]["result"]) == ("count_lines", "3")
    assert entries[-1]["data"]["summary"] == "the file has 3 lines"
    # Two model requests of 400 + 25 tokens, each costing 0.75 as the model reported.
    usage = body["status"]["usage"]
    assert (usage["inputTokens"], usage["outputTokens"], usage["cost"]) == (800, 50, "1.50")


def test_agno_reported_cost_over_the_budget_fails_with_budget_exceeded(fw):
    config = {"agent": "agno_agent:build", "prompt": "count the lines"}
    fw.apply("spendy", "agno", config, modelConstraints={"budget": "1.00"})
    proc = fw.run("spendy", "agno")
    assert proc.returncode == 3, proc.stderr
    term = fw.termination("spendy")
    assert term["reason"] == BUDGET_EXCEEDED
    assert "spent 1.50 of the Session's budget 1.00" in term["message"]
    body = fw.session("spendy")
    assert body["status"]["usage"]["cost"] == "1.50"
    # The steps up to the stop are kept as an artifact.
    assert fw.stored("spendy", "steps.jsonl")


# --- n8n: the real n8n, its workflows imported through its CLI ----------------------------

N8N_TOKEN = "test-webhook-token"
N8N_CREDENTIAL = {
    "id": "ambientHeaderAuth",
    "name": "ambient header",
    "type": "httpHeaderAuth",
    "data": {"name": "X-Ambient-Token", "value": N8N_TOKEN},
}


def _webhook(path: str, respond: str) -> dict[str, Any]:
    return {
        "id": f"hook-{path}",
        "name": "Webhook",
        "type": "n8n-nodes-base.webhook",
        "typeVersion": 2,
        "position": [0, 0],
        "webhookId": f"00000000-0000-4000-8000-{abs(hash(path)) % 10**12:012d}",
        "parameters": {
            "httpMethod": "POST",
            "path": path,
            "authentication": "headerAuth",
            "responseMode": respond,
            "options": {},
        },
        "credentials": {
            "httpHeaderAuth": {"id": N8N_CREDENTIAL["id"], "name": N8N_CREDENTIAL["name"]}
        },
    }


def _workflow(workflow_id: str, first: dict[str, Any], second: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": workflow_id,
        "name": workflow_id,
        "active": False,
        "nodes": [first, second],
        "connections": {
            first["name"]: {"main": [[{"node": second["name"], "type": "main", "index": 0}]]}
        },
        "settings": {"executionOrder": "v1"},
    }


# The answer names the execution and repeats what the runner sent (prompt, trigger).
RESPOND = {
    "id": "respond",
    "name": "Respond",
    "type": "n8n-nodes-base.respondToWebhook",
    "typeVersion": 1.1,
    "position": [200, 0],
    "parameters": {
        "respondWith": "json",
        "responseBody": (
            '={{ JSON.stringify({ summary: "handled: " + $json.body.prompt, '
            "executionId: $execution.id, source: $json.body.trigger.source, "
            "session: $json.body.session.name }) }}"
        ),
        "options": {},
    },
}
FAIL = {
    "id": "fail",
    "name": "Fail",
    "type": "n8n-nodes-base.stopAndError",
    "typeVersion": 1,
    "position": [200, 0],
    "parameters": {"errorMessage": "the deploy is frozen"},
}
# A workflow that decides the task cannot be done and says why, in the runner's convention.
REFUSE = {
    **RESPOND,
    "parameters": {
        "respondWith": "json",
        "responseBody": (
            '={{ JSON.stringify({ status: "error", message: "no repository named" }) }}'
        ),
        "options": {},
    },
}
WORKFLOWS = [
    _workflow("ambientRespondOk", _webhook("ambient-ok", "responseNode"), RESPOND),
    _workflow("ambientFails", _webhook("ambient-fail", "lastNode"), FAIL),
    _workflow("ambientRefuses", _webhook("ambient-refuse", "responseNode"), REFUSE),
]


@dataclass
class N8n:
    base: str
    log: Path


@pytest.fixture(scope="module")
def n8n(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A real n8n (hack/install-n8n.sh, pinned and cached), its credential and workflows
    imported and published through its CLI, then started on a free loopback port."""
    install = subprocess.run(
        [str(ROOT / "hack" / "install-n8n.sh")],
        stdout=subprocess.PIPE,
        stderr=None,  # progress shows in the test's output
        text=True,
        timeout=3000,
        check=False,
    )
    if install.returncode != 0:
        pytest.fail("hack/install-n8n.sh failed (its output is above)")
    paths = dict(line.split("=", 1) for line in install.stdout.split())
    node, n8n_bin = paths["NODE"], paths["N8N"]
    home = tmp_path_factory.mktemp("n8n")
    port = free_port()
    env = {
        "PATH": f"{Path(node).parent}:{os.environ['PATH']}",
        "HOME": str(home),
        "N8N_USER_FOLDER": str(home),
        "N8N_PORT": str(port),
        "N8N_LISTEN_ADDRESS": "127.0.0.1",
        "N8N_HOST": "127.0.0.1",
        "N8N_ENCRYPTION_KEY": "test-encryption-key-for-the-runner-test",
        "N8N_DIAGNOSTICS_ENABLED": "false",
        "N8N_VERSION_NOTIFICATIONS_ENABLED": "false",
        "N8N_TEMPLATES_ENABLED": "false",
        "N8N_PERSONALIZATION_ENABLED": "false",
        "N8N_SECURE_COOKIE": "false",
        "N8N_RUNNERS_ENABLED": "false",
        "DB_TYPE": "sqlite",
        "NODE_ENV": "production",
    }
    files = home / "import"
    files.mkdir()
    (files / "credentials.json").write_text(json.dumps([N8N_CREDENTIAL]))
    (files / "workflows.json").write_text(json.dumps(WORKFLOWS))

    def cli(*args: str) -> None:
        proc = subprocess.run(
            [node, n8n_bin, *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        assert proc.returncode == 0, (
            f"n8n {' '.join(args)}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        )

    cli("import:credentials", f"--input={files / 'credentials.json'}")
    cli("import:workflow", f"--input={files / 'workflows.json'}")
    for workflow in WORKFLOWS:
        cli("publish:workflow", f"--id={workflow['id']}")
    log = home / "n8n.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [node, n8n_bin, "start"], env=env, stdout=out, stderr=subprocess.STDOUT
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300
        while True:
            assert proc.poll() is None, f"n8n exited:\n{log.read_text()[-4000:]}"
            try:
                urllib.request.urlopen(f"{base}/healthz/readiness", timeout=2).close()
                break
            except OSError:
                assert time.monotonic() < deadline, f"n8n did not start:\n{log.read_text()[-4000:]}"
                time.sleep(1)
        yield N8n(base, log)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _n8n_env(n8n: N8n, token: str = N8N_TOKEN) -> dict[str, str]:
    """What the operator passes from the Secret ambient-n8n-credentials."""
    return {"N8N_BASE_URL": n8n.base, "N8N_WEBHOOK_TOKEN": token}


def test_n8n_runs_the_workflow_and_reads_its_answer(fw, n8n):
    config = {"workflow": "ambient-ok", "prompt": "triage issue 7"}
    fw.apply("flow", "n8n", config)
    proc = fw.run("flow", "n8n", _n8n_env(n8n))
    assert proc.returncode == 0, proc.stderr

    entries = _runner_entries(fw.session("flow"))
    execution = next(e for e in entries if e["event"] == "N8nExecution")
    assert execution["data"]["status"] == "success"
    assert execution["data"]["executionId"].isdigit()
    assert entries[-1]["event"] == "RunnerSucceeded"
    assert entries[-1]["data"]["summary"] == "handled: triage issue 7"
    answer = json.loads(fw.stored("flow", "output.json"))
    # n8n received the Session's context: its name and the trigger.
    assert (answer["session"], answer["source"]) == ("flow", "github")


def test_n8n_workflow_failure_is_the_sessions_failure(fw, n8n):
    fw.apply("frozen", "n8n", {"workflow": "ambient-fail", "prompt": "deploy"})
    proc = fw.run("frozen", "n8n", _n8n_env(n8n))
    assert proc.returncode == 1
    term = fw.termination("frozen")
    assert term["reason"] == RUNNER_ERROR
    assert term["message"].startswith("N8n failed: RuntimeError: the workflow failed (500)")
    execution = next(
        e for e in _runner_entries(fw.session("frozen")) if e["event"] == "N8nExecution"
    )
    assert execution["data"]["status"] == "error"


def test_n8n_workflow_that_answers_an_error_fails_with_its_message(fw, n8n):
    # n8n's own 500 says only "Error in workflow"; a workflow that answers
    # {"status": "error", "message": ...} gives the Session its own reason.
    fw.apply("refused", "n8n", {"workflow": "ambient-refuse", "prompt": "deploy"})
    proc = fw.run("refused", "n8n", _n8n_env(n8n))
    assert proc.returncode == 1
    assert fw.termination("refused")["message"] == (
        "N8n failed: RuntimeError: the workflow reported error: no repository named"
    )


def test_n8n_refuses_a_wrong_credential(fw, n8n):
    fw.apply("intruder", "n8n", {"workflow": "ambient-ok", "prompt": "x"})
    proc = fw.run("intruder", "n8n", _n8n_env(n8n, token="wrong"))
    assert proc.returncode == 1
    assert "n8n refused the credential (403)" in fw.termination("intruder")["message"]
