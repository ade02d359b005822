"""Retention: what is expired at a given moment (time passed in, never read)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from ambient.common import retention as r
from ambient.common.store import keys
from ambient.crds.models import RetentionPolicy, Session

MakeSession = Callable[..., Session]
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _finished(make_session: MakeSession, name: str, at: datetime, **status: Any) -> Session:
    return make_session(
        name=name,
        status={"phase": "Completed", "completionTime": _stamp(at), **status},
    )


@pytest.mark.parametrize(
    ("text", "delta"),
    [
        ("90d", timedelta(days=90)),
        ("12h", timedelta(hours=12)),
        ("2w", timedelta(weeks=2)),
        ("7y", timedelta(days=7 * 365)),
    ],
)
def test_parse_duration(text: str, delta: timedelta) -> None:
    assert r.parse_duration(text) == delta


@pytest.mark.parametrize("text", ["", "90", "d", "0d", "-1d", "1.5d", "90m", "100000d"])
def test_parse_duration_refuses_with_a_hint(text: str) -> None:
    with pytest.raises(ValueError, match=r"e\.g\. 90d or 7y"):
        r.parse_duration(text)


def test_finished_sessions_expire_exactly_at_their_retention(make_session: MakeSession) -> None:
    policy = RetentionPolicy(sessions="90d")
    old = _finished(make_session, "old", T0)
    young = _finished(make_session, "young", T0 + timedelta(days=1))
    at_90 = r.sweep("ns", policy, [old, young], [], T0 + timedelta(days=90))
    assert at_90.sessions == ["old"]
    just_before = r.sweep("ns", policy, [old], [], T0 + timedelta(days=90) - timedelta(seconds=1))
    assert just_before.sessions == []


def test_live_sessions_are_never_deleted(make_session: MakeSession) -> None:
    running = make_session(name="running", status={"phase": "Running"})
    pending = make_session(name="pending", status={"phase": "Pending", "reason": "Queued"})
    result = r.sweep(
        "ns", RetentionPolicy(sessions="1h"), [running, pending], [], T0 + timedelta(days=999)
    )
    assert result.sessions == [] and result.empty


def test_missing_completion_time_falls_back_to_last_history(make_session: MakeSession) -> None:
    history = [
        {"seq": 0, "id": "x", "timestamp": _stamp(T0), "event": "WorkloadFailed", "data": {}}
    ]
    session = make_session(name="legacy", status={"phase": "Failed", "history": history})
    assert r.finished_at(session) == T0


def test_artifacts_expire_on_their_own(make_session: MakeSession) -> None:
    artifacts = {
        "generated": [
            {"type": "s3", "location": "s3://b/ns/kept/old.txt", "createdAt": _stamp(T0)},
            {
                "type": "s3",
                "location": "s3://b/ns/kept/new.txt",
                "createdAt": _stamp(T0 + timedelta(days=20)),
            },
        ]
    }
    session = _finished(make_session, "kept", T0 + timedelta(days=20), artifacts=artifacts)
    result = r.sweep(
        "ns", RetentionPolicy(), [session], [], T0 + timedelta(days=31), store=r.Store("b")
    )
    assert result.sessions == []
    assert [(a.location, a.key) for a in result.artifacts] == [
        ("s3://b/ns/kept/old.txt", "ns/kept/old.txt")
    ]
    assert result.refused == {}


def _with_artifacts(
    make_session: MakeSession,
    locations: list[str],
    *,
    storage: str = "",
) -> Session:
    """A finished Session of namespace ``ns`` named ``mine`` whose runner listed
    ``locations`` as artifacts written at T0 (and, optionally, chose ``storage``)."""
    generated = [{"type": "s3", "location": x, "createdAt": _stamp(T0)} for x in locations]
    session = _finished(make_session, "mine", T0, artifacts={"generated": generated})
    session.metadata.namespace = "ns"
    if storage:
        session.spec.artifacts.storage.location = storage
    return session


LATER = T0 + timedelta(days=31)


@pytest.mark.parametrize(
    ("location", "why"),
    [
        ("s3://b/runs/other-ns/mine/report.txt", "outside the Session's own folder"),
        ("s3://b/runs/ns/other/report.txt", "outside the Session's own folder"),
        ("s3://b/runs/ns/mine-x/report.txt", "outside the Session's own folder"),
        ("s3://b/runs/ns/mine", "outside the Session's own folder"),
        ("s3://b/runs/ns/mine/", "not a plain key"),
        ("s3://b/runs/ns/mine/../../team-b/s/report.txt", "not a plain key"),
        ("s3://b/runs/ns/mine/./x", "not a plain key"),
        ("s3://b/runs/ns/mine//x", "not a plain key"),
        ("s3://b/runs/ns/mine/a\\..\\x", "not a plain key"),
        ("s3://b/runs/ns/mine/%2e%2e/x", "not a plain key"),
        ("s3://b/other-prefix/ns/mine/x", "outside the store's prefix"),
        ("s3://b/team-b/s/u/history/0-499.json", "outside the store's prefix"),
        ("s3://b/runs/audit/team-b/2026/01/01/a.jsonl", "an audit batch"),
        ("s3://b/runs/deliveries/team-b/2026/01/01/github-x.json", "a stored delivery"),
        ("s3://b/runs/archive/sessions/team-b/s-u.json", "a Session archive"),
        ("s3://b/runs/team-b/payloads/github/d-1.json", "a stored payload"),
        ("s3://b/runs/ns/mine/u-1/history/0-499.json", "a history archive"),
        ("s3://other-bucket/runs/ns/mine/x", "in bucket 'other-bucket'"),
        ("s3://b", "outside the store's prefix"),
        ("pvc://claim/ns/mine/x", "not an s3:// location"),
        ("https://b.s3.amazonaws.com/runs/ns/mine/x", "not an s3:// location"),
        ("/runs/ns/mine/x", "not an s3:// location"),
    ],
)
def test_retention_deletes_only_under_the_sessions_own_folder(
    make_session: MakeSession, location: str, why: str
) -> None:
    """A runner may list any location: only its own artifacts are ever deleted."""
    session = _with_artifacts(make_session, [location, "s3://b/runs/ns/mine/out/ok.txt"])
    result = r.sweep("ns", RetentionPolicy(), [session], [], LATER, store=r.Store("b", "runs/"))
    assert [a.key for a in result.artifacts] == ["runs/ns/mine/out/ok.txt"]
    assert list(result.refused) == [location]
    assert why in result.refused[location] and "Session mine" in result.refused[location]
    assert result.report()["refusedArtifacts"] == result.refused


@pytest.mark.parametrize("namespace", ["audit", "deliveries", "archive"])
def test_a_namespace_named_like_a_store_folder_owns_nothing_there(
    make_session: MakeSession, namespace: str
) -> None:
    """Namespace ``audit``'s Session ``team-b`` has the folder ``audit/team-b/``, which
    holds team-b's audit batches: nothing under it is deleted as an artifact."""
    location = f"s3://b/{namespace}/team-b/2026/01/01/a.jsonl"
    session = _with_artifacts(make_session, [location])
    session.metadata.name = "team-b"
    result = r.sweep(namespace, RetentionPolicy(), [session], [], LATER, store=r.Store("b"))
    assert result.artifacts == [] and list(result.refused) == [location]


def test_a_session_named_payloads_owns_no_payload(make_session: MakeSession) -> None:
    location = "s3://b/ns/payloads/github/d-1.json"
    session = _with_artifacts(make_session, [location])
    session.metadata.name = "payloads"
    result = r.sweep("ns", RetentionPolicy(), [session], [], LATER, store=r.Store("b"))
    assert result.artifacts == [] and "a stored payload" in result.refused[location]


def test_a_location_the_session_chose_inside_its_namespace_counts_as_its_own(
    make_session: MakeSession,
) -> None:
    """The runner writes under spec.artifacts.storage.location when one is set."""
    own = "s3://b/ns/custom/ns/mine/report.txt"
    session = _with_artifacts(make_session, [own], storage="b/ns/custom")
    result = r.sweep("ns", RetentionPolicy(), [session], [], LATER, store=r.Store("b"))
    assert [a.key for a in result.artifacts] == ["ns/custom/ns/mine/report.txt"]


@pytest.mark.parametrize("storage", ["b/team-b", "s3://b/team-b/s", "b/ns-x/custom", "b/nsx"])
def test_a_location_the_session_chose_elsewhere_is_not_its_own(
    make_session: MakeSession, storage: str
) -> None:
    """A creator who points storage at another tenant's folder gains nothing there."""
    chosen = storage.removeprefix("s3://").partition("/")[2].strip("/")
    location = "s3://b/" + "/".join(p for p in (chosen, "ns", "mine", "x.txt") if p)
    session = _with_artifacts(make_session, [location], storage=storage)
    result = r.sweep("ns", RetentionPolicy(), [session], [], LATER, store=r.Store("b"))
    assert result.artifacts == [] and list(result.refused) == [location]


def test_without_a_store_every_expired_artifact_is_kept(make_session: MakeSession) -> None:
    session = _with_artifacts(make_session, ["s3://b/ns/mine/x"])
    result = r.sweep("ns", RetentionPolicy(), [session], [], LATER)
    assert result.artifacts == []
    assert "no artifact store" in result.refused["s3://b/ns/mine/x"]


def test_audit_days_expire_only_when_the_whole_day_has(make_session: MakeSession) -> None:
    day = datetime(2020, 1, 1, tzinfo=UTC)
    objects = [r.AuditObject("audit/ns/2020/01/01/a.jsonl", day)]
    policy = RetentionPolicy(audit_logs="7y")
    edge = day + timedelta(days=7 * 365)
    assert r.sweep("ns", policy, [], objects, edge).audit_objects == []
    expired = r.sweep("ns", policy, [], objects, edge + timedelta(days=1))
    assert expired.audit_objects == ["audit/ns/2020/01/01/a.jsonl"]


def test_delivery_requests_expire_on_their_own_retention(make_session: MakeSession) -> None:
    day = datetime(2026, 1, 1, tzinfo=UTC)
    requests = [r.AuditObject("deliveries/ns/2026/01/01/github-abc.json", day)]
    audits = [r.AuditObject("audit/ns/2026/01/01/a.jsonl", day)]
    policy = RetentionPolicy()  # deliveries 30d, audit 7y
    kept = r.sweep("ns", policy, [], audits, day + timedelta(days=30), delivery_objects=requests)
    assert kept.delivery_objects == [] and kept.empty
    later = day + timedelta(days=31)
    expired = r.sweep("ns", policy, [], audits, later, delivery_objects=requests)
    assert expired.delivery_objects == ["deliveries/ns/2026/01/01/github-abc.json"]
    assert expired.audit_objects == []  # the records of those deliveries stay (auditLogs)
    assert expired.report()["deliveryObjects"] == expired.delivery_objects


def test_report_is_sorted_and_json_friendly(make_session: MakeSession) -> None:
    sessions = [_finished(make_session, n, T0) for n in ("b", "a")]
    report = r.sweep(
        "ns", RetentionPolicy(sessions="1d"), sessions, [], T0 + timedelta(days=2)
    ).report()
    assert report["sessions"] == ["a", "b"] and report["namespace"] == "ns"


def test_naive_now_is_refused(make_session: MakeSession) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        r.sweep("ns", RetentionPolicy(), [], [], datetime(2026, 1, 1))


def test_dated_objects_read_the_day_from_the_key_layout() -> None:
    day = datetime(2026, 3, 1, tzinfo=UTC)
    batch = keys.audit_batch_key("p", "team-a", day.date(), "2026-03-01T12:00:00Z", "b1")
    found = r.dated_objects([batch, "p/audit/team-a/README", "p/audit/team-a/x/y/z"])
    assert found == [r.AuditObject(batch, day)]
