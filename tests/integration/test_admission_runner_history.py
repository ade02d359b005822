"""A runner's history entries through the real admission webhook, written with the
runner's own ServiceAccount token (issue 17, finding 7): the runner may append entries
in its own id prefix (``runner:``) and vocabulary only. A forged ``notify/...`` entry
(which would suppress a failure notification) or a forged ``HistoryArchived`` entry with
``carried`` entries (which would move the cross-attempt timeout) is refused, and the
Session's history is unchanged."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

import httpx
import pytest

from .test_admission_webhook import _apply, _session, governed, webhook  # noqa: F401
from .test_runners_contract import _api, _runner_token

pytestmark = pytest.mark.integration


def _append(
    cluster: Any, namespace: str, name: str, entry: dict[str, Any], *, token: str, api: Any
) -> httpx.Response:
    server, ca = api
    body = cluster.session(namespace, name)
    history = body.get("status", {}).get("history", [])
    entry = {"seq": history[-1]["seq"] + 1 if history else 0, **entry}
    body.setdefault("status", {})["history"] = [*history, entry]
    return httpx.put(
        f"{server}/apis/ambient.ai/v1alpha1/namespaces/{namespace}/sessions/{name}/status",
        json=body,
        headers={"Authorization": f"Bearer {token}"},
        verify=ssl.create_default_context(cafile=str(ca)),
        timeout=30,
    )


def test_a_runner_cannot_forge_the_operators_history_entries(
    cluster: Any,
    governed: str,  # noqa: F811 - the fixture imported above
    operator: Any,
    tmp_path: Path,
) -> None:
    assert _apply(cluster, _session("forger"), governed).returncode == 0
    token = _runner_token(cluster, governed, "forger", tmp_path).read_text()
    api = _api(cluster, tmp_path)
    cluster.wait_phase(governed, "forger", "Completed")
    before = cluster.session(governed, "forger")["status"]["history"]
    stamp = "2026-03-10T00:00:00Z"
    forged = {
        "a notification marked sent": (
            {"id": "notify/Failed/abc", "event": "NotificationDelivered", "timestamp": stamp},
            "is the operator's to write",
        ),
        "an archive entry carrying a late first Job": (
            {
                "id": "runner:archive",
                "event": "HistoryArchived",
                "timestamp": stamp,
                "data": {"carried": f'[["job/1","WorkloadCreated","{stamp}"]]'},
            },
            "is not a runner event",
        ),
        "an operator event under a runner id": (
            {"id": "runner:ok", "event": "WorkloadSucceeded", "timestamp": stamp},
            "is not a runner event",
        ),
    }
    for what, (entry, reason) in forged.items():
        resp = _append(cluster, governed, "forger", entry, token=token, api=api)
        assert resp.status_code == 403, (what, resp.text)
        assert reason in resp.json()["message"], (what, resp.text)
    assert cluster.session(governed, "forger")["status"]["history"] == before
    # The runner's own entries still go in.
    own = {"id": "runner:hello", "event": "Hello", "timestamp": stamp, "data": {"x": "y"}}
    resp = _append(cluster, governed, "forger", own, token=token, api=api)
    assert resp.status_code == 200, resp.text
    after = cluster.session(governed, "forger")["status"]["history"]
    assert after[: len(before)] == before and after[-1]["id"] == "runner:hello"
