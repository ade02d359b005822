"""The API as the real API server enforces it: schema, CEL rules, explain, columns."""

from __future__ import annotations

import json
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

pytestmark = pytest.mark.integration

GROUP, VERSION = "ambient.ai", "v1alpha1"


def _create(cluster: Any, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = cluster.custom.create_namespaced_custom_object(
        GROUP, VERSION, namespace, "sessions", body
    )
    return result


def _status(cluster: Any, namespace: str, name: str, patch: Any) -> None:
    """A merge patch (dict) or JSON patch (list) on the status subresource."""
    cluster.custom.patch_namespaced_custom_object_status(
        GROUP, VERSION, namespace, "sessions", name, patch
    )


def _entry(seq: int, entry_id: str, event: str = "Note") -> dict[str, Any]:
    return {"seq": seq, "id": entry_id, "timestamp": "2026-01-01T00:00:00Z", "event": event}


def test_schema_violation_is_refused_with_a_readable_error(cluster, namespace, make_session):
    body = make_session("bad-framework")
    body["spec"]["framework"]["type"] = "Not A Framework!"
    body["spec"]["trigger"]["source"] = "carrier-pigeon"
    proc = cluster.kubectl("apply", "-n", namespace, "-f", "-", stdin=json.dumps(body), check=False)
    assert proc.returncode != 0
    assert "spec.framework.type" in proc.stderr
    assert "spec.trigger.source" in proc.stderr
    assert "carrier-pigeon" in proc.stderr
    listed = cluster.custom.list_namespaced_custom_object(GROUP, VERSION, namespace, "sessions")
    assert listed["items"] == []


def test_missing_trigger_is_refused(cluster, namespace, make_session):
    body = make_session("no-trigger")
    del body["spec"]["trigger"]
    with pytest.raises(ApiException) as err:
        _create(cluster, namespace, body)
    assert err.value.status == 422
    assert "spec.trigger" in err.value.body


def test_trigger_is_immutable(cluster, namespace, make_session):
    _create(cluster, namespace, make_session("immutable"))
    patch = {"spec": {"trigger": {"event": "changed"}}}
    with pytest.raises(ApiException) as err:
        cluster.custom.patch_namespaced_custom_object(
            GROUP, VERSION, namespace, "sessions", "immutable", patch
        )
    assert err.value.status == 422
    assert "spec.trigger is immutable" in err.value.body
    # Other spec fields stay editable.
    cluster.custom.patch_namespaced_custom_object(
        GROUP, VERSION, namespace, "sessions", "immutable", {"spec": {"timeoutSeconds": 60}}
    )


def test_history_append_is_allowed_but_rewrite_reorder_and_removal_are_refused(
    cluster, operator, namespace, make_session
):
    # An unknown framework makes the operator write its entries once and then leave the
    # Session alone (it is terminal), so the writes below race with nothing.
    _create(cluster, namespace, make_session("history", framework="no-such-runner"))
    cluster.wait_phase(namespace, "history", "Failed")
    current = cluster.session(namespace, "history")["status"]["history"]
    n = len(current)
    assert n >= 2

    appended = [*current, _entry(n, "c-appended")]
    _status(cluster, namespace, "history", {"status": {"history": appended}})
    assert cluster.session(namespace, "history")["status"]["history"][-1]["id"] == "c-appended"

    rewritten = [dict(e) for e in appended]
    rewritten[0] = {**rewritten[0], "event": "Rewritten"}
    reordered = [dict(e) for e in appended]
    reordered[0], reordered[1] = {**appended[1], "seq": 0}, {**appended[0], "seq": 1}
    cases = {
        "rewrite": (rewritten, "an existing entry cannot be changed"),
        "remove last": (appended[:-1], "entries cannot be removed"),
        "remove first": (
            [{**e, "seq": i} for i, e in enumerate(appended[1:])],
            "an existing entry cannot be changed",
        ),
        "reorder": (reordered, "an existing entry cannot be changed"),
        "remove first, keeping seq": (appended[1:], "unless an archive"),
        "gap": ([*appended, _entry(n + 5, "gap")], "consecutive seq"),
    }
    for label, (history, message) in cases.items():
        with pytest.raises(ApiException) as err:
            _status(cluster, namespace, "history", {"status": {"history": history}})
        assert err.value.status == 422, label
        assert message in err.value.body, (label, err.value.body)
    removal = cluster.kubectl(
        "patch",
        "session",
        "history",
        "-n",
        namespace,
        "--subresource=status",
        "--type=json",
        "-p",
        json.dumps([{"op": "remove", "path": "/status/history"}]),
        check=False,
    )
    assert removal.returncode != 0
    assert "append-only" in removal.stderr
    assert cluster.session(namespace, "history")["status"]["history"] == appended


def test_kubectl_explain_shows_the_model_descriptions(cluster):
    out = cluster.kubectl("explain", "session.spec.trigger").stdout
    assert "What started the Session. Immutable." in out
    assert "The system that sent the event" in out
    assert "payloadRef" in out
    policy = cluster.kubectl("explain", "namespacepolicy.spec.models.budget").stdout
    assert "monthly" in policy


def test_printer_columns_short_names_and_category(cluster, namespace, make_session):
    _create(cluster, namespace, make_session("columns"))
    out = cluster.kubectl("get", "sess", "-n", namespace).stdout
    header = out.splitlines()[0].split()
    assert header == ["NAME", "PHASE", "REASON", "FRAMEWORK", "SOURCE", "AGE"]
    assert "columns" in cluster.kubectl("get", "ambient", "-n", namespace, "-o", "name").stdout
    cluster.apply(
        {
            "apiVersion": "ambient.ai/v1alpha1",
            "kind": "NamespacePolicy",
            "metadata": {"name": "policy"},
            "spec": {"models": {"allowed": ["m"], "budget": {"monthly": "10.00"}}},
        },
        namespace,
    )
    header = cluster.kubectl("get", "nspol", "-n", namespace).stdout.splitlines()[0].split()
    assert header[:4] == ["NAME", "MODELS", "BUDGET", "CURRENCY"]


def test_policy_schema_refuses_bad_money_and_urls(cluster, namespace):
    bad = {
        "apiVersion": "ambient.ai/v1alpha1",
        "kind": "NamespacePolicy",
        "metadata": {"name": "policy"},
        "spec": {
            "models": {"budget": {"monthly": "12.345", "currency": "usd"}},
            "notifications": {"webhooks": [{"url": "http://x", "events": ["session.failed"]}]},
        },
    }
    proc = cluster.kubectl("apply", "-n", namespace, "-f", "-", stdin=json.dumps(bad), check=False)
    assert proc.returncode != 0
    for field in ("spec.models.budget.monthly", "spec.models.budget.currency", "url"):
        assert field in proc.stderr


def test_sessions_are_selectable_by_phase_and_framework(cluster, operator, namespace, make_session):
    cluster.apply(make_session("done"), namespace)
    cluster.apply(make_session("odd", framework="no-such-runner"), namespace)
    cluster.wait_phase(namespace, "done", "Completed")
    cluster.wait_phase(namespace, "odd", "Failed")

    def names(selector: str) -> list[str]:
        out = cluster.kubectl(
            "get", "sessions", "-n", namespace, "--field-selector", selector, "-o", "name"
        ).stdout
        return sorted(line.rsplit("/", 1)[-1] for line in out.split())

    assert names("status.phase=Completed") == ["done"]
    assert names("status.phase=Failed") == ["odd"]
    assert names("spec.framework.type=script") == ["done"]
    assert names("status.reason=UnknownFramework") == ["odd"]
