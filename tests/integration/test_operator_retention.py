"""Retention on the real API server and a real S3 server: time is moved, never waited."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from ambient.common.kube.client import Kube
from ambient.common.store.s3 import S3Store
from ambient.crds.models import RetentionPolicy
from ambient.operator import janitor

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.fixture
def kube(cluster: Any) -> Kube:
    return Kube(4, kubeconfig=cluster.kubeconfig)


def _session(
    cluster: Any, namespace: str, make_session: Any, name: str, status: dict[str, Any]
) -> str:
    # Approval keeps a running operator (if this run has one) from starting a Job.
    cluster.apply(make_session(name, approval=True), namespace)
    cluster.custom.patch_namespaced_custom_object_status(
        "ambient.ai", "v1alpha1", namespace, "sessions", name, {"status": status}
    )
    body = cluster.session(namespace, name)
    assert body["status"]["phase"] == status["phase"]
    return str(body["metadata"]["uid"])


def test_expired_sessions_are_archived_then_deleted_and_live_ones_kept(
    cluster: Any, namespace: str, make_session: Any, kube: Kube, s3_store: S3Store
) -> None:
    old_artifact = f"s3://{s3_store.bucket}/{namespace}/old/report.txt"
    s3_store.put_new(f"{namespace}/old/report.txt", b"report")
    uid = _session(
        cluster,
        namespace,
        make_session,
        "old",
        {
            "phase": "Completed",
            "completionTime": _stamp(T0),
            "artifacts": {
                "generated": [
                    {"type": "s3", "location": old_artifact, "createdAt": _stamp(T0)},
                    {"type": "s3", "location": "s3://someone-elses/x", "createdAt": _stamp(T0)},
                ]
            },
        },
    )
    _session(
        cluster,
        namespace,
        make_session,
        "recent",
        {"phase": "Failed", "completionTime": _stamp(T0 + timedelta(days=60))},
    )
    _session(cluster, namespace, make_session, "live", {"phase": "Running"})
    s3_store.put_new(f"audit/{namespace}/2018/06/01/a.jsonl", b"{}\n")
    s3_store.put_new(f"audit/{namespace}/2025/12/31/b.jsonl", b"{}\n")
    policy = RetentionPolicy(sessions="90d", artifacts="30d", audit_logs="7y")
    now = T0 + timedelta(days=91)

    dry = janitor.run(kube, s3_store, namespace, policy, now, dry_run=True)
    assert dry.sweep.sessions == ["old"]
    assert [a.location for a in dry.sweep.artifacts] == [old_artifact]
    assert "s3://someone-elses/x" in dry.sweep.refused
    assert dry.sweep.audit_objects == [f"audit/{namespace}/2018/06/01/a.jsonl"]
    assert dry.deleted_sessions == [] and dry.archived == []
    assert cluster.session(namespace, "old")["metadata"]["uid"] == uid
    assert s3_store.get(f"{namespace}/old/report.txt") == b"report"

    done = janitor.run(kube, s3_store, namespace, policy, now)
    assert done.deleted_sessions == ["old"]
    (archived,) = done.archived
    kept = json.loads(s3_store.get(archived))
    assert kept["metadata"]["uid"] == uid
    assert kept["status"]["completionTime"] == _stamp(T0)
    names = {s["metadata"]["name"] for s in kube.list_sessions(namespace)}
    assert names == {"recent", "live"}
    assert done.deleted_artifacts == [old_artifact]
    assert "s3://someone-elses/x" in done.skipped
    assert s3_store.list_keys(f"{namespace}/old/") == []
    assert s3_store.list_keys(f"audit/{namespace}/") == [f"audit/{namespace}/2025/12/31/b.jsonl"]

    again = janitor.run(kube, s3_store, namespace, policy, now)
    assert again.deleted_sessions == [] and again.sweep.sessions == []


def test_without_a_store_nothing_is_deleted(
    cluster: Any, namespace: str, make_session: Any, kube: Kube
) -> None:
    _session(
        cluster,
        namespace,
        make_session,
        "old",
        {"phase": "Completed", "completionTime": _stamp(T0)},
    )
    outcome = janitor.run(kube, None, namespace, RetentionPolicy(), T0 + timedelta(days=365))
    assert outcome.sweep.sessions == ["old"]
    assert outcome.deleted_sessions == []
    assert "archive" in outcome.skipped["old"]
    assert cluster.session(namespace, "old")["status"]["phase"] == "Completed"


def test_a_runner_cannot_have_retention_delete_another_tenants_objects(
    cluster: Any, namespace: str, make_session: Any, kube: Kube, s3_store: S3Store
) -> None:
    """The runner writes status.artifacts (the CRD and admission let it): whatever it
    names outside its own Session's folder outlives retention, and the run says so."""
    victim = f"{namespace}-b"  # another tenant's namespace (its objects only, in the store)
    theirs = {
        f"{victim}/their-session/report.txt": "an artifact of another tenant",
        f"{victim}/their-session/0d9a3b4c-1111-4222-8333-444455556666/history/0-899.json": (
            "a history archive of another tenant"
        ),
        f"{victim}/payloads/github/d-1.json": "a stored payload of another tenant",
        f"archive/sessions/{victim}/s-0d9a3b4c.json": "a Session archive of another tenant",
        f"audit/{victim}/2026/01/01/a.jsonl": "an audit batch of another tenant",
        f"{namespace}/other-session/report.txt": "another Session's artifact, same tenant",
    }
    for key, text in theirs.items():
        s3_store.put_new(key, text.encode())
    s3_store.put_new(f"{namespace}/greedy/mine.txt", b"its own")
    bucket = s3_store.bucket
    named = [
        *(f"s3://{bucket}/{key}" for key in theirs),
        f"s3://{bucket}/{namespace}/greedy/../../{victim}/their-session/report.txt",
        f"s3://{bucket}/{namespace}/greedy/mine.txt",
    ]
    _session(
        cluster,
        namespace,
        make_session,
        "greedy",
        {
            "phase": "Running",  # a live Session: its artifacts still expire
            "artifacts": {
                "generated": [
                    {"type": "output", "location": x, "createdAt": _stamp(T0)} for x in named
                ]
            },
        },
    )
    listed = cluster.session(namespace, "greedy")["status"]["artifacts"]["generated"]
    assert [a["location"] for a in listed] == named  # the API server took every one

    policy = RetentionPolicy(sessions="90d", artifacts="30d", audit_logs="7y")
    done = janitor.run(kube, s3_store, namespace, policy, T0 + timedelta(days=31))

    assert done.deleted_artifacts == [f"s3://{bucket}/{namespace}/greedy/mine.txt"]
    assert set(done.skipped) == set(named[:-1])
    assert s3_store.list_keys(f"{namespace}/greedy/") == []
    for key, text in theirs.items():
        assert s3_store.get(key) == text.encode(), key
