"""The kopf adapter only hands events to the controller and starts and stops things."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import kopf
import pytest
import yaml

from ambient.crds import naming
from ambient.operator import adapter, sharding
from ambient.operator.sessions.observe import job_view
from ambient.operator.settings import OperatorSettings


class FakeController:
    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def start_workers(self, indexes: dict[str, Any]) -> None:
        self.calls.append(("start_workers",))

    def index_session(self, body: Any) -> dict[str, Any]:
        return {"slim": body["metadata"]["name"]}

    async def session_event(self, *args: Any) -> None:
        self.calls.append(("session_event", args[0], args[2], args[3]))

    async def job_event(self, *args: Any) -> None:
        self.calls.append(("job_event", args[0]))

    async def policy_event(self, *args: Any) -> None:
        self.calls.append(("policy_event", args[0]))

    async def policy_usage_event(self, *args: Any) -> None:
        self.calls.append(("policy_usage_event", args[0], args[2]))

    async def stop(self) -> None:
        self.calls.append(("stop",))


class FakeSupervisor:
    def __init__(self) -> None:
        self.stopped = False

    async def stop(self) -> None:
        self.stopped = True


@pytest.fixture
def fake() -> Iterator[FakeController]:
    controller = FakeController()
    adapter._running["controller"] = controller
    yield controller
    adapter._running.clear()


def test_events_go_to_the_controller(fake: FakeController) -> None:
    indexes = {"session_index": {}, "job_index": {}}
    body = {"metadata": {"name": "s"}}

    async def main() -> None:
        await adapter.on_session(
            event={"type": "ADDED"}, body=body, namespace="ns", name="s", **indexes
        )
        await adapter.on_session(
            event={"type": "DELETED"}, body=body, namespace="ns", name="s", **indexes
        )
        await adapter.on_job(
            event={"type": "MODIFIED"}, body=body, namespace="ns", labels={}, **indexes
        )
        await adapter.on_policy(event={"type": "ADDED"}, body=body, namespace="ns", **indexes)
        await adapter.on_policy_usage(event={"type": "ADDED"}, namespace="ns", name="p", status={})
        assert await adapter.session_index(namespace="ns", name="s", body=body) == {
            ("ns", "s"): {"slim": "s"},
            "ns": "s",  # filed under its namespace too
        }
        job = {"metadata": {"name": "s-a1"}}
        filed = await adapter.job_index(
            namespace="ns", labels={naming.LABEL_SESSION: "s"}, body=job
        )
        assert filed == {("ns", "s"): job_view(job), "ns": "s"}

    asyncio.run(main())
    assert fake.calls == [
        ("start_workers",),
        ("session_event", "ADDED", "ns", "s"),
        ("session_event", "DELETED", "ns", "s"),  # no workers started for a delete
        ("start_workers",),
        ("job_event", "MODIFIED"),
        ("policy_event", "ADDED"),
        ("policy_usage_event", "ADDED", "p"),
    ]


def test_shutdown_stops_the_workers_and_every_loop(fake: FakeController) -> None:
    supervisor = FakeSupervisor()
    adapter._running["supervisor"] = supervisor
    asyncio.run(adapter.shutdown())
    assert fake.calls == [("stop",)]
    assert supervisor.stopped
    assert adapter._running == {}
    asyncio.run(adapter.shutdown())  # a second clean-up finds nothing to stop


def test_kopf_logs_in_as_the_operators_client(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "config"
    path.write_text(
        yaml.safe_dump(
            {
                "current-context": "c",
                "contexts": [{"name": "c", "context": {"cluster": "k", "user": "u"}}],
                "clusters": [{"name": "k", "cluster": {"server": "https://api:6443"}}],
                "users": [{"name": "u", "user": {"token": "t0k"}}],
            }
        )
    )
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("KUBECONFIG", str(path))
    info = adapter.login()
    assert (info.server, info.scheme, info.token) == ("https://api:6443", "Bearer", "t0k")
    assert info.as_http_headers()["Authorization"] == "Bearer t0k"


def test_the_operator_process_never_imports_the_official_client(tmp_path: Any) -> None:
    # main() refuses the import before kopf's (kopf imports it when installed: ~40 MiB).
    # The operator runs against a server that is not there; a timer looks, then ends it.
    path = tmp_path / "config"
    path.write_text(
        yaml.safe_dump(
            {
                "current-context": "c",
                "contexts": [{"name": "c", "context": {"cluster": "k", "user": "u"}}],
                "clusters": [{"name": "k", "cluster": {"server": "http://127.0.0.1:9"}}],
                "users": [{"name": "u", "user": {"token": "t"}}],
            }
        )
    )
    code = (
        "import os, sys, threading, time\n"
        "def look():\n"
        "    while 'ambient.operator.adapter' not in sys.modules:\n"
        "        time.sleep(0.2)\n"
        "    time.sleep(3)  # kopf running, logged in, failing to reach the server\n"
        "    os._exit(0 if sys.modules.get('kubernetes', 0) is None else 3)\n"
        "threading.Thread(target=look, daemon=True).start()\n"
        "from ambient.operator import main\n"
        "main.main(['--liveness', ''])\n"
        "os._exit(4)\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("KUBERNETES_SERVICE")}
    done = subprocess.run(
        [sys.executable, "-c", code],
        env={**env, "KUBECONFIG": str(path)},
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]


def test_every_handler_and_index_skips_namespaces_another_shard_owns(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    registry = kopf.get_default_registry()
    handlers = [
        h
        for h in [*registry._indexing.get_all_handlers(), *registry._watching.get_all_handlers()]
        if getattr(h.fn, "__module__", "") == adapter.__name__
    ]
    assert len(handlers) == 7
    assert all(h.when is adapter._owned for h in handlers)
    settings = OperatorSettings(shard_map="m", shard_index=1)
    settings.serve_share(2)
    monkeypatch.setitem(adapter._given, "settings", OperatorSettings())
    assert all(adapter._owned(namespace=f"team-{i}") for i in range(40))  # unsharded: all
    monkeypatch.setitem(adapter._given, "settings", settings)
    names = [f"team-{i}" for i in range(40)]
    assert {n for n in names if adapter._owned(namespace=n)} == {
        n for n in names if sharding.owner(n, 2) == 1
    }


def test_a_failed_start_is_retried_within_seconds_not_kopfs_minute() -> None:
    # Right after the CRDs are installed the first lists may get a 429 ("storage is
    # (re)initializing"); kopf's default retry would leave the operator idle for 60 s.
    handlers = kopf.get_default_registry()._activities.get_all_handlers()
    configure = next(h for h in handlers if h.fn is adapter.configure)
    assert configure.backoff is not None
    assert configure.backoff <= 5
