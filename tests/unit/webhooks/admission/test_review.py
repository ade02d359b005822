"""Admission decisions for every kind of write, on AdmissionReview requests as the API
server sends them."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import pytest

from ambient.crds.models import NamespacePolicy
from ambient.crds.naming import (
    ANNOTATION_APPROVED_BY,
    ANNOTATION_CREATED_BY_USER,
    ANNOTATION_REPLAYED_BY,
    runner_username,
)
from ambient.runners.registry import Registry
from ambient.webhooks.admission.review import (
    ANNOTATION_CANCELLED_BY,
    Identities,
    State,
    review,
)

NS = "team-alpha"
NOW = datetime(2026, 3, 10, tzinfo=UTC)
OPERATOR = "system:serviceaccount:ambient-system:ambient-operator"
ALICE = {"username": "alice", "groups": ["developers", "system:authenticated"]}
LEAD = {"username": "lead", "groups": ["team-leads"]}
HASH = "a" * 64


def _policy(**spec: Any) -> NamespacePolicy:
    body = {
        "metadata": {"name": "policy", "namespace": NS},
        "spec": {
            "models": {"allowed": ["claude-3-sonnet"], "budget": {"monthly": "100.00"}},
            "tools": {"allowed": ["Bash", "Read"], "blocked": ["WebFetch"]},
            "approval": {"required": False, "approvers": ["group:team-leads", "user:boss"]},
            **spec,
        },
    }
    return NamespacePolicy.model_validate(body)


def _session(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "apiVersion": "ambient.ai/v1alpha1",
        "kind": "Session",
        "metadata": {"name": "s1", "namespace": NS, "uid": "u-1", "annotations": {}},
        "spec": {
            "trigger": {"source": "manual", "event": "test", "payload": {}},
            "framework": {"type": "script", "config": {"command": ["true"]}},
            "policy": {
                "modelConstraints": {"allowed": ["claude-3-sonnet"], "budget": "5.00"},
                "toolConstraints": {"allowed": ["Bash"]},
            },
        },
        "status": {"phase": "Pending", "history": []},
    }
    for path, value in changes.items():
        target = body
        keys = path.split("__")
        for k in keys[:-1]:
            target = target.setdefault(k, {})
        target[keys[-1]] = value
    return body


def _entry(seq: int, eid: str) -> dict[str, Any]:
    return {"seq": seq, "id": eid, "timestamp": "2026-03-10T00:00:00Z", "event": "E", "data": {}}


def _request(
    operation: str,
    obj: dict[str, Any],
    old: dict[str, Any] | None = None,
    *,
    user: dict[str, Any] | None = None,
    resource: str = "sessions",
    sub: str = "",
) -> dict[str, Any]:
    return {
        "uid": "req-1",
        "resource": {"group": "ambient.ai", "version": "v1alpha1", "resource": resource},
        "subResource": sub,
        "operation": operation,
        "namespace": NS,
        "name": obj["metadata"]["name"],
        "userInfo": user or ALICE,
        "object": obj,
        "oldObject": old,
    }


@pytest.fixture
def state(registry: Registry) -> State:
    return State({NS: [_policy()]}, registry, Identities(frozenset({OPERATOR})), NOW)


def test_a_compliant_session_is_admitted(state: State) -> None:
    assert review(_request("CREATE", _session()), state).allowed


def test_a_model_outside_the_policy_is_refused_with_the_allowed_list(state: State) -> None:
    body = _session(spec__policy={"modelConstraints": {"allowed": ["claude-3-opus"]}})
    verdict = review(_request("CREATE", body), state)
    assert not verdict.allowed
    assert "model claude-3-opus is not allowed in namespace team-alpha" in verdict.message
    assert "claude-3-sonnet" in verdict.message


def test_no_policy_means_default_deny_unless_a_default_is_configured(
    state: State, registry: Registry
) -> None:
    empty = State({}, registry, state.identities, NOW)
    verdict = review(_request("CREATE", _session()), empty)
    assert not verdict.allowed and "has no NamespacePolicy" in verdict.message
    with_default = State({}, registry, state.identities, NOW, default_policy=_policy())
    assert review(_request("CREATE", _session()), with_default).allowed


def test_two_policies_in_one_namespace_fail_closed(state: State, registry: Registry) -> None:
    other = _policy()
    other.metadata.name = "second"
    doubled = State({NS: [_policy(), other]}, registry, state.identities, NOW)
    verdict = review(_request("CREATE", _session()), doubled)
    assert not verdict.allowed and "more than one NamespacePolicy" in verdict.message


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("spec__framework", {"type": "script", "config": {"command": ["rm", "-rf"]}}),
        ("spec__policy", {"modelConstraints": {"allowed": ["claude-3-sonnet"]}}),
        ("spec__trigger", {"source": "github", "event": "x", "payload": {}}),
    ],
)
def test_the_spec_is_immutable(state: State, field: str, value: Any) -> None:
    old = _session()
    new = _session(**{field: value})
    verdict = review(_request("UPDATE", new, old), state)
    assert not verdict.allowed and "cannot change after the Session is created" in verdict.message


def test_cancel_may_be_set_and_signed_by_the_requester(state: State) -> None:
    old = _session()
    new = _session(spec__cancel=True)
    new["metadata"]["annotations"] = {ANNOTATION_CANCELLED_BY: "alice"}
    assert review(_request("UPDATE", new, old), state).allowed
    forged = copy.deepcopy(new)
    forged["metadata"]["annotations"] = {ANNOTATION_CANCELLED_BY: "bob"}
    verdict = review(_request("UPDATE", forged, old), state)
    assert not verdict.allowed and "must name who sets it" in verdict.message


def test_approval_by_an_approver_group_is_admitted(state: State) -> None:
    old = _session()
    new = copy.deepcopy(old)
    new["metadata"]["annotations"] = {ANNOTATION_APPROVED_BY: "lead"}
    assert review(_request("UPDATE", new, old, user=LEAD), state).allowed


def test_approval_by_a_non_approver_is_refused_naming_the_approvers(state: State) -> None:
    old = _session()
    new = copy.deepcopy(old)
    new["metadata"]["annotations"] = {ANNOTATION_APPROVED_BY: "alice"}
    verdict = review(_request("UPDATE", new, old), state)
    assert not verdict.allowed
    assert "alice may not approve" in verdict.message and "group:team-leads" in verdict.message


def test_a_session_cannot_be_created_pre_approved_by_a_non_approver(state: State) -> None:
    body = _session()
    body["metadata"]["annotations"] = {ANNOTATION_APPROVED_BY: "alice"}
    assert not review(_request("CREATE", body), state).allowed


def test_a_replay_must_name_who_replays_it(state: State) -> None:
    honest = _session()
    honest["metadata"]["annotations"] = {ANNOTATION_REPLAYED_BY: "alice"}
    assert review(_request("CREATE", honest), state).allowed
    forged = _session()
    forged["metadata"]["annotations"] = {ANNOTATION_REPLAYED_BY: "bob"}
    verdict = review(_request("CREATE", forged), state)
    assert not verdict.allowed and "must name who sets it" in verdict.message


def test_an_approval_cannot_be_removed(state: State) -> None:
    old = _session()
    old["metadata"]["annotations"] = {ANNOTATION_APPROVED_BY: "lead"}
    new = _session()
    verdict = review(_request("UPDATE", new, old, user=LEAD), state)
    assert not verdict.allowed and "cannot be removed" in verdict.message


def _status_request(
    old_history: list[dict[str, Any]],
    new_history: list[dict[str, Any]],
    user: dict[str, Any],
    **status: Any,
) -> dict[str, Any]:
    old = _session(status__history=old_history)
    new = _session(status__history=new_history)
    new["status"].update(status)
    return _request("UPDATE", new, old, user=user, sub="status")


def test_the_operator_may_append_history(state: State) -> None:
    req = _status_request(
        [_entry(0, "a")], [_entry(0, "a"), _entry(1, "b")], {"username": OPERATOR}
    )
    assert review(req, state).allowed


@pytest.mark.parametrize(
    ("new", "message"),
    [
        ([], "cannot be removed"),
        ([{**_entry(0, "a"), "event": "Rewritten"}, _entry(1, "b")], "cannot be changed"),
        ([_entry(1, "b"), _entry(0, "a")], "cannot be changed"),
        ([_entry(0, "a"), _entry(5, "gap")], "numbered in order"),
    ],
)
def test_history_is_append_only_even_for_the_operator(
    state: State, new: list[dict[str, Any]], message: str
) -> None:
    verdict = review(_status_request([_entry(0, "a")], new, {"username": OPERATOR}), state)
    assert not verdict.allowed and message in verdict.message


def test_only_the_operator_and_the_sessions_runner_write_status(state: State) -> None:
    history = [_entry(0, "a")]
    grown = [_entry(0, "a"), _entry(1, "runner:x")]
    runner = {"username": runner_username(NS, "s1")}
    assert review(_status_request(history, grown, runner), state).allowed
    other_runner = {"username": runner_username(NS, "someone-else")}
    verdict = review(_status_request(history, grown, other_runner), state)
    assert (
        not verdict.allowed and "only the operator and the Session's own runner" in verdict.message
    )
    assert not review(_status_request(history, grown, ALICE), state).allowed
    admin = {"username": "kubernetes-admin", "groups": ["system:masters"]}
    assert not review(_status_request(history, grown, admin), state).allowed


def test_a_runner_may_not_change_the_phase(state: State) -> None:
    runner = {"username": runner_username(NS, "s1")}
    verdict = review(_status_request([], [], runner, phase="Completed"), state)
    assert not verdict.allowed and "status.phase" in verdict.message


def test_operator_groups_are_honoured(registry: Registry) -> None:
    state = State({NS: [_policy()]}, registry, Identities(frozenset(), frozenset({"ops"})), NOW)
    req = _status_request([], [_entry(0, "a")], {"username": "x", "groups": ["ops"]})
    assert review(req, state).allowed


def _policy_request(
    spec: dict[str, Any], name: str = "policy", op: str = "CREATE"
) -> dict[str, Any]:
    body = {
        "apiVersion": "ambient.ai/v1alpha1",
        "kind": "NamespacePolicy",
        "metadata": {"name": name, "namespace": NS},
        "spec": spec,
    }
    return _request(op, body, resource="namespacepolicies")


def test_a_well_formed_policy_is_admitted(registry: Registry) -> None:
    empty = State({}, registry, Identities(), NOW)
    spec = {
        "webhookAuth": {"apiKeys": {"github": [HASH, "b" * 64]}},
        "retention": {"sessions": "30d", "auditLogs": "7y"},
    }
    assert review(_policy_request(spec), empty).allowed


def test_alertmanager_and_generic_keys_are_admitted(registry: Registry) -> None:
    spec = {"webhookAuth": {"apiKeys": {"alertmanager": HASH, "generic": ["b" * 64]}}}
    assert review(_policy_request(spec), State({}, registry, Identities(), NOW)).allowed


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"webhookAuth": {"apiKeys": {"github": "not-a-hash"}}}, "is not a key hash"),
        ({"webhookAuth": {"apiKeys": {"github": [HASH, HASH]}}}, "same hash twice"),
        ({"webhookAuth": {"apiKeys": {"gitlab": HASH}}}, "unknown source"),
        ({"webhookAuth": {"apiKeys": {"jira": 42}}}, "SHA-256 hex string or a list"),
        (
            {"notifications": {"webhooks": [{"url": "https://", "events": ["session.failed"]}]}},
            "https URL with a host",
        ),
    ],
)
def test_malformed_policies_are_refused(
    registry: Registry, spec: dict[str, Any], message: str
) -> None:
    verdict = review(_policy_request(spec), State({}, registry, Identities(), NOW))
    assert not verdict.allowed and message in verdict.message


def test_one_policy_per_namespace(state: State) -> None:
    verdict = review(_policy_request({}, name="second"), state)
    assert not verdict.allowed and "one policy per namespace" in verdict.message
    assert review(_policy_request({}, name="policy", op="UPDATE"), state).allowed


def test_a_key_hash_of_another_namespace_is_refused(registry: Registry) -> None:
    state = State({}, registry, Identities(), NOW, key_owners={HASH: "team-beta"})
    verdict = review(_policy_request({"webhookAuth": {"apiKeys": {"slack": HASH}}}), state)
    assert not verdict.allowed and "another namespace" in verdict.message


@pytest.mark.parametrize(
    "request_",
    [
        {"resource": {"group": "apps", "resource": "deployments"}, "operation": "CREATE"},
        {"resource": {"group": "ambient.ai", "resource": "sessions"}, "operation": "DELETE"},
        {"resource": {"group": "ambient.ai", "resource": "widgets"}, "operation": "CREATE"},
    ],
)
def test_anything_else_is_denied(state: State, request_: dict[str, Any]) -> None:
    assert not review(request_, state).allowed


def test_a_malformed_object_is_denied_with_the_reason(state: State) -> None:
    body = _session()
    del body["spec"]["framework"]
    verdict = review(_request("CREATE", body), state)
    assert not verdict.allowed and "spec.framework: Field required" in verdict.message


# --- history archival: the one write that may drop entries ------------------------------

LOC = "s3://bucket/team-alpha/s1/u-1/history/0-4.json"


def _archive(from_seq: int, to_seq: int, location: str = LOC) -> dict[str, Any]:
    return {
        "fromSeq": from_seq,
        "toSeq": to_seq,
        "count": to_seq - from_seq + 1,
        "location": location,
        "sha256": "b" * 64,
        "archivedAt": "2026-03-10T00:00:00Z",
    }


def _archived_entry(seq: int, location: str = LOC) -> dict[str, Any]:
    return {
        **_entry(seq, f"history-archived/{seq}"),
        "event": "HistoryArchived",
        "data": {"location": location},
    }


WINDOW = [_entry(i, f"runner:e{i}") for i in range(10)]


def test_the_operator_may_archive_a_prefix(state: State) -> None:
    new = [*WINDOW[5:], _archived_entry(10)]
    req = _status_request(WINDOW, new, {"username": OPERATOR}, historyArchives=[_archive(0, 4)])
    assert review(req, state).allowed


@pytest.mark.parametrize(
    ("new", "archives", "message"),
    [
        (WINDOW[5:], [], "cannot be removed unless an archive"),
        ([*WINDOW[6:], _archived_entry(10)], [_archive(0, 4)], "must start at seq 5"),
        ([*WINDOW[5:], _archived_entry(10)], [_archive(2, 4)], "must start at seq 0"),
        (WINDOW[5:], [_archive(0, 4)], "HistoryArchived entry"),
    ],
)
def test_dropping_entries_needs_an_archive_that_covers_them(
    state: State, new: list[dict[str, Any]], archives: list[dict[str, Any]], message: str
) -> None:
    req = _status_request(WINDOW, new, {"username": OPERATOR}, historyArchives=archives)
    verdict = review(req, state)
    assert not verdict.allowed and message in verdict.message


def test_an_archive_record_cannot_be_rewritten(state: State) -> None:
    window = [*WINDOW[5:], _archived_entry(10)]
    old = _session(status__history=window, status__historyArchives=[_archive(0, 4)])
    new = _session(
        status__history=window,
        status__historyArchives=[_archive(0, 4, "s3://bucket/forged.json")],
    )
    verdict = review(_request("UPDATE", new, old, user={"username": OPERATOR}, sub="status"), state)
    assert not verdict.allowed and "historyArchives is append-only" in verdict.message


def test_a_runner_may_not_archive(state: State) -> None:
    new = [*WINDOW[5:], _archived_entry(10)]
    runner = {"username": runner_username(NS, "s1")}
    req = _status_request(WINDOW, new, runner, historyArchives=[_archive(0, 4)])
    verdict = review(req, state)
    assert not verdict.allowed and "status.historyArchives" in verdict.message


# --- the creator, and four eyes -----------------------------------------------------------


def test_an_approver_cannot_create_a_session_approved_by_themselves(state: State) -> None:
    body = _session()
    body["metadata"]["annotations"] = {ANNOTATION_APPROVED_BY: "lead"}
    verdict = review(_request("CREATE", body, user=LEAD), state)
    assert not verdict.allowed and "lead may not approve a Session they create" in verdict.message
    # Stamped by the mutating webhook, common.policy says it once.
    body["metadata"]["annotations"][ANNOTATION_CREATED_BY_USER] = "lead"
    verdict = review(_request("CREATE", body, user=LEAD), state)
    assert not verdict.allowed and verdict.message.count("may not approve") == 1
    assert "lead created this Session and may not approve it" in verdict.message


def test_an_approver_cannot_approve_a_session_they_created(state: State) -> None:
    old = _session()
    old["metadata"]["annotations"] = {ANNOTATION_CREATED_BY_USER: "lead"}
    new = copy.deepcopy(old)
    new["metadata"]["annotations"][ANNOTATION_APPROVED_BY] = "lead"
    verdict = review(_request("UPDATE", new, old, user=LEAD), state)
    assert not verdict.allowed and "lead may not approve a Session they created" in verdict.message
    boss = {"username": "boss", "groups": []}
    new["metadata"]["annotations"][ANNOTATION_APPROVED_BY] = "boss"
    assert review(_request("UPDATE", new, old, user=boss), state).allowed


def test_the_creator_cannot_be_forged_or_changed(state: State) -> None:
    forged = _session()
    forged["metadata"]["annotations"] = {ANNOTATION_CREATED_BY_USER: "boss"}
    verdict = review(_request("CREATE", forged), state)
    assert not verdict.allowed and "names who creates the Session" in verdict.message
    old = _session()
    old["metadata"]["annotations"] = {ANNOTATION_CREATED_BY_USER: "alice"}
    for changed in ({ANNOTATION_CREATED_BY_USER: "boss"}, {}):
        new = copy.deepcopy(old)
        new["metadata"]["annotations"] = changed
        verdict = review(_request("UPDATE", new, old), state)
        assert not verdict.allowed and "cannot change" in verdict.message


def test_a_signing_secret_outside_the_readable_names_is_refused(
    state: State, registry: Registry
) -> None:
    def policy_request(name: str) -> dict[str, Any]:
        body = {
            "metadata": {"name": "policy", "namespace": NS},
            "spec": {
                "webhookAuth": {"signingSecretRef": {"name": name}},
                "notifications": {"signingSecretRef": {"name": name}},
            },
        }
        return _request("UPDATE", body, body, resource="namespacepolicies")

    limited = State(
        {NS: [_policy()]}, registry, state.identities, NOW,
        signing_secrets=frozenset({"ambient-webhook-signing"}),
    )  # fmt: skip
    assert review(policy_request("ambient-webhook-signing"), limited).allowed
    verdict = review(policy_request("team-database"), limited)
    assert not verdict.allowed and verdict.message.count("is not a Secret the platform") == 2
    assert review(policy_request("team-database"), state).allowed  # no set: any name


def test_a_policy_whose_routes_do_not_compile_is_refused(registry: Registry) -> None:
    route = {"source": "github", "events": ["pull_request.opened"]}
    spec = {
        "ingress": {
            "routes": [
                {**route, "filter": "body.pull_request.base.ref == 'main'", "task": "{{ event }}"},
                {**route, "filter": "body.x =="},
                {**route, "task": "{% if %}"},
            ]
        }
    }
    verdict = review(_policy_request(spec), State({}, registry, Identities(), NOW))
    assert not verdict.allowed
    assert "spec.ingress.routes[1].filter: the filter is not valid CEL" in verdict.message
    assert "spec.ingress.routes[2].task: the template is not valid Jinja" in verdict.message
    assert "routes[0]" not in verdict.message
    spec["ingress"]["routes"] = spec["ingress"]["routes"][:1]
    assert review(_policy_request(spec), State({}, registry, Identities(), NOW)).allowed


# --- a runner's entries are its own (issue 17, finding 7) ---------------------------------


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (_entry(1, "notify/Failed/abc"), "start with 'runner:'"),
        ({**_entry(1, "runner:x"), "event": "NotificationDelivered"}, "is not a runner event"),
        (
            {
                **_entry(1, "runner:x"),
                "event": "HistoryArchived",
                "data": {"carried": '[["approved","Approved","2026-03-10T00:00:00Z"]]'},
            },
            "is not a runner event",
        ),
        ({**_entry(1, "runner:x"), "event": "not camel case"}, "is not a runner event"),
    ],
)
def test_a_runner_may_not_write_the_operators_entries(
    state: State, entry: dict[str, Any], message: str
) -> None:
    runner = {"username": runner_username(NS, "s1")}
    verdict = review(_status_request([_entry(0, "a")], [_entry(0, "a"), entry], runner), state)
    assert not verdict.allowed and message in verdict.message
    # The operator writes its own vocabulary, under its own ids.
    if not entry["id"].startswith("runner:"):
        operator = {"username": OPERATOR}
        assert review(_status_request([_entry(0, "a")], [_entry(0, "a"), entry], operator), state)


def test_a_runner_appends_its_own_vocabulary(state: State) -> None:
    runner = {"username": runner_username(NS, "s1")}
    entries = [
        {**_entry(1, "runner:result"), "event": "RunnerSucceeded", "data": {"summary": "ok"}},
        {**_entry(2, "runner:turn-1"), "event": "ModelCalled"},
        {**_entry(3, "runner:hello"), "event": "Hello"},
    ]
    old = [_entry(0, "created")]  # the operator's entries before it are not the runner's
    assert review(_status_request(old, old + entries, runner), state).allowed


# --- usage only grows (finding 6), framework.config is bounded (finding 9) ---------------


@pytest.mark.parametrize("user", [{"username": runner_username(NS, "s1")}, {"username": OPERATOR}])
def test_usage_cannot_be_lowered_by_anyone(state: State, user: dict[str, Any]) -> None:
    old = _session(status__usage={"inputTokens": 10, "outputTokens": 5, "cost": "2.50"})
    lowered = _session(status__usage={"inputTokens": 10, "outputTokens": 5, "cost": "0.10"})
    verdict = review(_request("UPDATE", lowered, old, user=user, sub="status"), state)
    assert not verdict.allowed and "status.usage.cost lowered" in verdict.message
    grown = _session(status__usage={"inputTokens": 11, "outputTokens": 5, "cost": "2.51"})
    assert review(_request("UPDATE", grown, old, user=user, sub="status"), state).allowed


def test_a_framework_config_over_64_kib_is_refused(state: State) -> None:
    big = _session(spec__framework={"type": "script", "config": {"blob": "x" * 70_000}})
    verdict = review(_request("CREATE", big, user=ALICE), state)
    assert not verdict.allowed and "spec.framework.config is" in verdict.message
    fits = _session(spec__framework={"type": "script", "config": {"blob": "x" * 60_000}})
    assert (
        "spec.framework.config" not in review(_request("CREATE", fits, user=ALICE), state).message
    )
