"""The claude-code runner with the real Claude Code CLI; only the model is scripted.

The CLI is the one the pinned claude-agent-sdk wheel bundles (installed by `make
runners-venv`). It talks to a Messages API server in this test (streaming SSE, as the CLI
asks) that answers with scripted tool_use blocks, so Claude Code's own tools do the work.
The runner runs as in its pod: its own process, the real API server, the Session's own
ServiceAccount token, and the context file the operator wrote (read back from the Job's
pod annotation). The repository is a local bare git repository.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
from collections.abc import Iterator
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest

from ambient.crds import naming
from ambient.runners.sdk.contract import BUDGET_EXCEEDED, RUNNER_ERROR, cents, termination_message

from .test_runners_contract import RUNNERS_BIN, _api, _runner_token

pytestmark = pytest.mark.integration

MODEL = "claude-sonnet-4-5"
API_KEY = "test-model-key"
GIT_TOKEN = "ghs_never-logged-token"


class _ScriptedModel(BaseHTTPRequestHandler):
    """The Messages API as Claude Code calls it: each agent turn takes the next scripted
    answer (the last one repeats); calls without tools (housekeeping) get plain text."""

    protocol_version = "HTTP/1.1"
    script: ClassVar[list[list[dict[str, Any]]]] = []
    usage: ClassVar[tuple[int, int]] = (1000, 100)
    calls: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        if "count_tokens" in self.path:
            self._send("application/json", json.dumps({"input_tokens": 10}).encode())
            return
        call = {
            "path": self.path,
            "apiKey": self.headers.get("x-api-key"),
            "model": body.get("model"),
            "tools": [t.get("name") for t in body.get("tools", [])],
            "messages": body.get("messages", []),
            "system": json.dumps(body.get("system", "")),
        }
        if call["tools"]:
            turn = len([c for c in self.calls if c["tools"]])
            blocks = self.script[min(turn, len(self.script) - 1)]
        else:
            blocks = [{"type": "text", "text": "ok"}]
        self.calls.append(call)
        stop = "tool_use" if any(b["type"] == "tool_use" for b in blocks) else "end_turn"
        events = self._events(str(body.get("model")), blocks, stop)
        data = b"".join(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n".encode() for e in events)
        self._send("text/event-stream", data)

    def _events(self, model: str, blocks: list[dict[str, Any]], stop: str) -> list[Any]:
        inp, out = self.usage
        message = {
            "id": f"msg_{len(self.calls)}",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": inp, "output_tokens": 1},
        }
        events: list[Any] = [{"type": "message_start", "message": message}]
        for i, block in enumerate(blocks):
            if block["type"] == "text":
                start = {"type": "text", "text": ""}
                delta = {"type": "text_delta", "text": block["text"]}
            else:
                start = {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}
                delta = {"type": "input_json_delta", "partial_json": json.dumps(block["input"])}
            events += [
                {"type": "content_block_start", "index": i, "content_block": start},
                {"type": "content_block_delta", "index": i, "delta": delta},
                {"type": "content_block_stop", "index": i},
            ]
        events += [
            {
                "type": "message_delta",
                "delta": {"stop_reason": stop, "stop_sequence": None},
                "usage": {"output_tokens": out},
            },
            {"type": "message_stop"},
        ]
        return events

    def _send(self, content_type: str, data: bytes) -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def model_api() -> Iterator[str]:
    _ScriptedModel.calls.clear()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _ScriptedModel)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def _git(*args: str, cwd: Path | None = None) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, text=True, check=True, timeout=60
    ).stdout.strip()


def _origin(tmp: Path) -> tuple[Path, str]:
    """A bare repository with main and a pull request's branch; returns it and the
    branch's head commit."""
    origin = tmp / "origin.git"
    _git("init", "--quiet", "--bare", "--initial-branch=main", str(origin))
    seed = tmp / "seed"
    _git("init", "--quiet", "--initial-branch=main", str(seed))
    for key, value in (("user.name", "t"), ("user.email", "t@example.invalid")):
        _git("config", key, value, cwd=seed)
    (seed / "hello.txt").write_text("hello world\n")
    _git("add", ".", cwd=seed)
    _git("commit", "--quiet", "-m", "seed", cwd=seed)
    _git("checkout", "--quiet", "-b", "fix-greeting", cwd=seed)
    (seed / "NOTES.md").write_text("the greeting is wrong\n")
    _git("add", ".", cwd=seed)
    _git("commit", "--quiet", "-m", "notes", cwd=seed)
    _git("push", "--quiet", str(origin), "main", "fix-greeting", cwd=seed)
    return origin, _git("rev-parse", "HEAD", cwd=seed)


@pytest.fixture
def claim(cluster: Any, namespace: str, tmp_path: Path) -> Iterator[str]:
    """A claim named ``ambient-artifacts`` (the names a pvc store may mount) bound to a
    volume of its own, so the runner's pod (which mounts it for the pvc store) can be
    scheduled; the runner process writes under AMBIENT_PVC_MOUNT, as it would under it."""
    volume = f"{namespace}-artifacts"
    cluster.apply(
        {
            "apiVersion": "v1",
            "kind": "PersistentVolume",
            "metadata": {"name": volume},
            "spec": {
                "capacity": {"storage": "1Gi"},
                "accessModes": ["ReadWriteOnce"],
                "storageClassName": "",
                "hostPath": {"path": str(tmp_path / "artifacts")},
                "claimRef": {"namespace": namespace, "name": "ambient-artifacts"},
            },
        }
    )
    cluster.apply(
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": "ambient-artifacts"},
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "storageClassName": "",
                "volumeName": volume,
                "resources": {"requests": {"storage": "1Gi"}},
            },
        },
        namespace,
    )
    yield "ambient-artifacts"
    cluster.kubectl("delete", "pv", volume, "--wait=false", check=False)


def _policy(cluster: Any, namespace: str) -> None:
    cluster.apply(
        {
            "apiVersion": "ambient.ai/v1alpha1",
            "kind": "NamespacePolicy",
            "metadata": {"name": "policy"},
            "spec": {
                "models": {"allowed": [MODEL], "budget": {"monthly": "100.00"}},
                # Bash is allowed and blocked: blocked wins.
                "tools": {"allowed": ["Read", "Edit", "Bash"], "blocked": ["Bash"]},
            },
        },
        namespace,
    )


def _session(
    name: str,
    config: dict[str, Any],
    *,
    budget: str,
    trigger: dict[str, Any],
    exit_code: str,
    message: str = "",
) -> dict[str, Any]:
    annotations = {"sim.ambient.ai/exit-code": exit_code, "sim.ambient.ai/duration": "2s"}
    if message:
        annotations["sim.ambient.ai/message"] = message
    return {
        "apiVersion": "ambient.ai/v1alpha1",
        "kind": "Session",
        "metadata": {"name": name, "annotations": annotations},
        "spec": {
            "trigger": trigger,
            "framework": {"type": "claude-code", "config": config},
            "policy": {
                "modelConstraints": {"allowed": [MODEL], "budget": budget},
                "toolConstraints": {"allowed": ["Read", "Edit"]},
            },
            "artifacts": {"storage": {"type": "pvc", "location": "ambient-artifacts"}},
        },
    }


def _context_from_the_job(cluster: Any, namespace: str, name: str, tmp: Path) -> Path:
    """The context file exactly as the operator wrote it into the runner's pod."""
    job_name = naming.job_name(name, 1)

    def job() -> Any:
        found = cluster.kubectl("get", "job", job_name, "-n", namespace, "-o", "json", check=False)
        return json.loads(found.stdout) if found.returncode == 0 else None

    body = cluster.wait_for(f"Job {job_name}", job)
    path = tmp / f"{name}.json"
    path.write_text(body["spec"]["template"]["metadata"]["annotations"][naming.ANNOTATION_CONTEXT])
    return path


def _run_runner(
    cluster: Any, namespace: str, name: str, tmp: Path, env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    server, ca = _api(cluster, tmp)
    workspace = tmp / "workspace"
    return subprocess.run(
        [str(RUNNERS_BIN / "ambient-runner"), "claude-code"],
        env={
            "PATH": os.environ["PATH"],
            "AMBIENT_CONTEXT_FILE": str(_context_from_the_job(cluster, namespace, name, tmp)),
            "AMBIENT_API_SERVER": server,
            "AMBIENT_API_CA_FILE": str(ca),
            "AMBIENT_API_TOKEN_FILE": str(_runner_token(cluster, namespace, name, tmp)),
            "AMBIENT_TERMINATION_LOG": str(tmp / f"{name}.termination"),
            "AMBIENT_PVC_MOUNT": str(tmp / "artifacts"),
            "AMBIENT_WORKSPACE": str(workspace),
            "HOME": str(workspace / ".home"),
            "AMBIENT_CHECKOUT_ALLOW_LOCAL": "1",
            "AMBIENT_GIT_TOKEN": GIT_TOKEN,
            **env,
        },
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def _transcript(tmp: Path, namespace: str, name: str) -> list[dict[str, Any]]:
    path = tmp / "artifacts" / namespace / name / "transcript.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.usefixtures("operator", "claim")
def test_claude_code_edits_the_checkout_refuses_blocked_tools_and_pushes_a_branch(
    cluster, namespace, model_api, tmp_path
):
    origin, head = _origin(tmp_path)
    repo = tmp_path / "workspace" / "repo"
    _ScriptedModel.usage = (1000, 100)
    _ScriptedModel.script = [
        [
            {
                "type": "tool_use",
                "id": "toolu_1",
                "name": "Read",
                "input": {"file_path": str(repo / "hello.txt")},
            }
        ],
        [
            {
                "type": "tool_use",
                "id": "toolu_2",
                "name": "Edit",
                "input": {
                    "file_path": str(repo / "hello.txt"),
                    "old_string": "hello",
                    "new_string": "goodbye",
                },
            }
        ],
        [{"type": "tool_use", "id": "toolu_3", "name": "Bash", "input": {"command": "env"}}],
        [{"type": "text", "text": "Changed the greeting to goodbye."}],
    ]
    _policy(cluster, namespace)
    trigger = {
        "source": "github",
        "event": "pull_request.opened",
        "payload": {
            "pull_request": {
                "number": 7,
                "head": {
                    "ref": "fix-greeting",
                    "sha": head,
                    "repo": {"clone_url": f"file://{origin}"},
                },
            },
            "repository": {"clone_url": f"file://{origin}", "default_branch": "main"},
        },
    }
    config = {
        "prompt": "Say goodbye instead of hello in hello.txt.",
        "model": MODEL,
        "maxTurns": 10,
        "push": True,
        # The author's own price would make every call cost 100.00: it must be ignored.
        "pricing": {"inputPerMTok": "100000", "outputPerMTok": "100000"},
    }
    cluster.apply(
        _session("greet", config, budget="1.00", trigger=trigger, exit_code="0"), namespace
    )
    proc = _run_runner(
        cluster,
        namespace,
        "greet",
        tmp_path,
        {"ANTHROPIC_BASE_URL": model_api, "ANTHROPIC_API_KEY": API_KEY},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert GIT_TOKEN not in proc.stdout + proc.stderr

    # The checkout is the pull request's head, changed on disk by Claude Code's Edit tool.
    assert (repo / "hello.txt").read_text() == "goodbye world\n"
    assert (repo / "NOTES.md").exists()
    # The branch is in the bare repository, on top of the pull request's head.
    branch = "ambient/greet"
    assert _git("show", f"{branch}:hello.txt", cwd=origin) == "goodbye world"
    assert _git("rev-parse", f"{branch}~1", cwd=origin) == head

    # The trigger is in the workspace, and the system prompt tells Claude Code where.
    trigger_file = tmp_path / "workspace" / ".ambient" / "trigger.json"
    assert json.loads(trigger_file.read_text())["payload"]["pull_request"]["number"] == 7
    assert str(trigger_file) in _ScriptedModel.calls[0]["system"]

    # Claude Code saw only the allowed tools, never Bash, with the key from the env.
    agent_calls = [c for c in _ScriptedModel.calls if c["tools"]]
    assert len(agent_calls) == 4
    for call in agent_calls:
        assert call["model"] == MODEL and call["apiKey"] == API_KEY
        assert "Read" in call["tools"] and "Edit" in call["tools"]
        assert "Bash" not in call["tools"]

    status = cluster.wait_phase(namespace, "greet", "Completed")["status"]
    # The operator passed the namespace policy's blocked tools; Claude Code got them as
    # disallowed tools.
    context = json.loads((tmp_path / "greet.json").read_text())
    assert context["policy"]["toolConstraints"] == {
        "allowed": ["Read", "Edit"],
        "blocked": ["Bash"],
    }
    started = next(e for e in status["history"] if e["event"] == "ClaudeCodeStarted")["data"]
    assert (started["tools"], started["disallowed"]) == ("Read,Edit", "Bash")
    used = [e["data"] for e in status["history"] if e["event"] == "ToolUsed"]
    assert [(d["tool"], d["outcome"]) for d in used] == [
        ("Read", "ok"),
        ("Edit", "ok"),
        ("Bash", "error"),
    ]
    assert used[1]["input"] == str(repo / "hello.txt")
    assert "Bash" in used[2]["error"]

    # The transcript artifact shows Claude Code refusing the blocked tool.
    transcript = _transcript(tmp_path, namespace, "greet")
    refusals = [
        block
        for line in transcript
        if line["type"] == "UserMessage" and isinstance(line["content"], list)
        for block in line["content"]
        if block.get("tool_use_id") == "toolu_3"
    ]
    assert refusals and refusals[0]["is_error"] is True
    assert "Bash" in str(refusals[0]["content"])
    assert GIT_TOKEN not in json.dumps(transcript)

    # Cost and tokens are Claude Code's own accounting (its result message), not the
    # author's pricing: 4 calls of 1000 in / 100 out at the CLI's Sonnet price.
    result = next(line for line in transcript if line["type"] == "ResultMessage")
    sdk_cost = Decimal(str(result["total_cost_usd"]))
    assert round(sdk_cost, 6) == Decimal("0.018")
    assert status["usage"] == {
        "inputTokens": 4000,
        "outputTokens": 400,
        "cost": cents(sdk_cost),
        "model": MODEL,
    }
    finished = next(e for e in status["history"] if e["event"] == "ClaudeCodeFinished")["data"]
    assert finished["costUsd"] == "0.018000"
    outcome = next(e for e in status["history"] if e["id"] == "runner:greet-a1/result")["data"]
    assert outcome["branch"] == branch
    assert outcome["changedFiles"] == "hello.txt"
    assert outcome["summary"] == "Changed the greeting to goodbye."
    assert outcome["transcript"] == f"pvc://ambient-artifacts/{namespace}/greet/transcript.jsonl"


@pytest.mark.usefixtures("operator", "claim")
def test_claude_code_stops_at_the_sessions_budget(cluster, namespace, model_api, tmp_path):
    origin, _ = _origin(tmp_path)
    # Every turn reads the file again and costs 0.0315 (10000 in, 100 out at $3/$15 per
    # million): Claude Code's max_budget_usd stops it after the second.
    _ScriptedModel.usage = (10_000, 100)
    repo = tmp_path / "workspace" / "repo"
    _ScriptedModel.script = [
        [
            {
                "type": "tool_use",
                "id": "toolu_r",
                "name": "Read",
                "input": {"file_path": str(repo / "hello.txt")},
            }
        ]
    ]
    _policy(cluster, namespace)
    expected = termination_message(BUDGET_EXCEEDED, "spent 0.06 of the Session's budget 0.05")
    trigger = {
        "source": "jira",
        "event": "jira:issue_created",
        "payload": {"issue": {"key": "OPS-1"}},
    }
    config = {
        "prompt": "Look at hello.txt forever.",
        "repository": f"file://{origin}",
        "ref": "main",
    }
    cluster.apply(
        _session("spend", config, budget="0.05", trigger=trigger, exit_code="3", message=expected),
        namespace,
    )
    # The key through the cluster default (AMBIENT_DEFAULT_*), as the Job passes it when
    # the namespace's own Secret has none.
    proc = _run_runner(
        cluster,
        namespace,
        "spend",
        tmp_path,
        {"ANTHROPIC_BASE_URL": model_api, "AMBIENT_DEFAULT_ANTHROPIC_API_KEY": API_KEY},
    )
    assert proc.returncode == 3, proc.stderr[-3000:]
    assert (tmp_path / "spend.termination").read_text() == expected
    agent_calls = [c for c in _ScriptedModel.calls if c["tools"]]
    assert len(agent_calls) == 2
    assert all(c["apiKey"] == API_KEY for c in agent_calls)

    status = cluster.wait_phase(namespace, "spend", "Failed")["status"]
    assert status["reason"] == "BudgetExceeded"
    assert status["usage"]["cost"] == "0.06"
    assert status["usage"]["inputTokens"] == 20_000
    finished = next(e for e in status["history"] if e["event"] == "ClaudeCodeFinished")["data"]
    assert finished["subtype"] == "error_max_budget_usd"
    started = next(e for e in status["history"] if e["event"] == "ClaudeCodeStarted")["data"]
    assert started["maxBudgetUsd"] == "0.05"
    # The transcript is stored even when the budget ends the run.
    assert _transcript(tmp_path, namespace, "spend")[-1]["type"] == "ResultMessage"


@pytest.mark.usefixtures("operator", "claim")
def test_bad_config_is_refused_before_anything_is_cloned_or_spent(
    cluster, namespace, model_api, tmp_path
):
    _policy(cluster, namespace)
    trigger = {"source": "slack", "event": "app_mention", "payload": {}}
    # A credential in the URL is refused: the token only ever comes from the Secret.
    leaky = "https://user:pw@git.example/o/r.git"
    expected = termination_message(
        RUNNER_ERROR,
        f"repository {leaky!r} must be an https:// URL without credentials in it "
        "(the token comes from the Secret ambient-source-credentials)",
    )
    config = {"prompt": "do it", "repository": leaky}
    cluster.apply(
        _session("leaky", config, budget="1.00", trigger=trigger, exit_code="1", message=expected),
        namespace,
    )
    proc = _run_runner(
        cluster,
        namespace,
        "leaky",
        tmp_path,
        {"ANTHROPIC_BASE_URL": model_api, "ANTHROPIC_API_KEY": API_KEY},
    )
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert (tmp_path / "leaky.termination").read_text() == expected
    assert _ScriptedModel.calls == []
    assert not (tmp_path / "workspace" / "repo" / ".git").exists()
    status = cluster.wait_phase(namespace, "leaky", "Failed")["status"]
    assert status["reason"] == RUNNER_ERROR
    assert not any(e["event"] == "ClaudeCodeStarted" for e in status["history"])
    assert status.get("usage", {}).get("cost", "0") in ("0", "0.00")
