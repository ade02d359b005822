"""The order a plan's objects are created in, and whose they are (pure)."""

from __future__ import annotations

from collections.abc import Callable

from ambient.crds.models import Session
from ambient.operator.sessions import creation


def _manifest(kind: str, name: str = "n") -> dict[str, object]:
    return {"kind": kind, "metadata": {"name": name}}


def test_a_job_comes_after_the_runner_identity(make_session: Callable[..., Session]) -> None:
    session = make_session()
    job = _manifest("Job")
    steps = creation.creation([_manifest("ConfigMap"), job], session)
    assert [[m["kind"] for m in step] for step in steps.identity] == [
        ["ServiceAccount", "Role"],
        ["RoleBinding"],
    ]
    assert [m["kind"] for m in steps.objects] == ["ConfigMap", "Job"]


def test_no_identity_without_a_job(make_session: Callable[..., Session]) -> None:
    steps = creation.creation([_manifest("ConfigMap")], make_session())
    assert steps.identity == []
    assert creation.creation([_manifest("Job")], None).identity == []


def test_ownership_conflicts(make_session: Callable[..., Session]) -> None:
    session = make_session()
    mine = {"metadata": {"ownerReferences": [{"uid": session.metadata.uid}]}}
    theirs = {"metadata": {"ownerReferences": [{"uid": "other"}]}}
    sa = _manifest("ServiceAccount", "runner-x")
    assert creation.conflict(sa, True, theirs, session) is None  # created now
    assert creation.conflict(sa, False, mine, session) is None
    message = creation.conflict(sa, False, theirs, session)
    assert message is not None and message.startswith("ServiceAccount runner-x exists")
    assert not creation.owned_by({"metadata": {}}, session)


def test_a_context_configmap_is_used_only_when_it_is_the_operators_own(
    make_session: Callable[..., Session],
) -> None:
    session = make_session()
    planned = {"kind": "ConfigMap", "metadata": {"name": "s-a1-ctx"}, "data": {"f": "ours"}}
    mine = {"metadata": {"ownerReferences": [{"uid": session.metadata.uid}]}}
    assert creation.untrusted_context(planned, True, {}, session) is None
    assert (
        creation.untrusted_context(planned, False, {**mine, "data": {"f": "ours"}}, session) is None
    )
    edited = creation.untrusted_context(planned, False, {**mine, "data": {"f": "x"}}, session)
    assert edited is not None and "does not hold the context the operator wrote" in edited
    planted = creation.untrusted_context(planned, False, {"data": {"f": "ours"}}, session)
    assert planted is not None and "is not owned by this Session" in planted
    assert creation.untrusted_context(_manifest("Job"), False, {}, session) is None
