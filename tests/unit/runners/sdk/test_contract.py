"""The runner contract's pure rules: context, history ids, artifact cap, usage, budget."""

from __future__ import annotations

import hashlib
import json
from decimal import Decimal
from pathlib import Path

import pytest

from ambient.crds.models import MAX_HISTORY_VALUE, GeneratedArtifact, PayloadRef, SessionStatus
from ambient.operator.sessions import builders
from ambient.operator.sessions.observe import runner_verdict
from ambient.runners.sdk import contract
from ambient.runners.sdk.artifacts import PvcStore, check_name, split_location


def _artifact(i: int) -> GeneratedArtifact:
    return GeneratedArtifact(
        type="output", location=f"s3://b/{i}", created_at="2026-03-01T00:00:00Z"
    )


def test_context_from_the_operators_builder(make_session, runner):
    session = make_session()
    text = builders.context_json(builders.runner_context(session, runner, "job-a1"))
    ctx = contract.Context.parse(text)
    assert ctx.name == session.metadata.name
    assert ctx.namespace == session.metadata.namespace
    assert ctx.config == session.spec.framework.config
    assert ctx.allowed_models == session.spec.policy.model_constraints.allowed


def test_the_context_carries_the_payload_reference(make_session, runner):
    session = make_session()
    ref = {"location": "s3://b/ns/payloads/github/d.json", "size": 3, "sha256": "a" * 64}
    trigger = session.spec.trigger.model_copy(
        update={"payload": {}, "payload_ref": PayloadRef.model_validate(ref)}
    )
    session = session.model_copy(
        update={"spec": session.spec.model_copy(update={"trigger": trigger})}
    )
    text = builders.context_json(builders.runner_context(session, runner, "job-a1"))
    ctx = contract.Context.parse(text)
    assert ctx.payload_ref == ref
    assert ctx.trigger["payload"] == {}


@pytest.mark.parametrize("text", ["not json", "[]", json.dumps({"schema": "other/v9"})])
def test_context_with_wrong_schema_is_refused(text):
    with pytest.raises(contract.ContractError, match="context file"):
        contract.Context.parse(text)


def test_history_append_prefixes_ids_orders_seq_and_is_idempotent():
    status: dict = {
        "history": [{"seq": 0, "id": "created", "timestamp": "t", "event": "E", "data": {}}]
    }
    assert contract.append_history(status, "step-1", "Progress", {"n": "1", "empty": ""}, "t")
    assert not contract.append_history(status, "step-1", "Progress", {"n": "1"}, "t")
    entry = status["history"][1]
    assert entry == {
        "seq": 1,
        "id": "runner:step-1",
        "timestamp": "t",
        "event": "Progress",
        "data": {"n": "1"},
    }
    SessionStatus.model_validate(status)  # the result passes the API's own model


def test_history_past_the_cap_is_refused_and_unchanged():
    status = {
        "history": [
            {"seq": i, "id": f"e{i}", "timestamp": "t", "event": "E", "data": {}}
            for i in range(1000)
        ]
    }
    with pytest.raises(contract.HistoryFullError, match="archives the oldest"):
        contract.append_history(status, "x", "E", {}, "t")
    assert len(status["history"]) == 1000


def test_history_append_continues_after_archived_entries():
    archive = {
        "fromSeq": 0,
        "toSeq": 499,
        "count": 500,
        "location": "s3://b/k.json",
        "sha256": "a" * 64,
        "archivedAt": "t",
    }
    status: dict = {"history": [], "historyArchives": [archive]}
    assert contract.append_history(status, "a", "E", {}, "t")
    assert contract.append_history(status, "b", "E", {}, "t")
    assert [e["seq"] for e in status["history"]] == [500, 501]
    SessionStatus.model_validate(status)


def test_payload_is_verified_against_its_reference():
    body = json.dumps({"action": "opened", "big": "x" * 100}).encode()
    ref = {
        "location": "s3://b/p.json",
        "size": len(body),
        "sha256": hashlib.sha256(body).hexdigest(),
    }
    assert contract.verify_payload(body, ref)["action"] == "opened"
    with pytest.raises(contract.PayloadError, match="bytes"):
        contract.verify_payload(body + b" ", ref)
    tampered = body.replace(b"opened", b"closed")
    with pytest.raises(contract.PayloadError, match="sha256"):
        contract.verify_payload(tampered, ref)
    listed = b"[1, 2]"
    with pytest.raises(contract.PayloadError, match="not a JSON object"):
        contract.verify_payload(
            listed, {"size": len(listed), "sha256": hashlib.sha256(listed).hexdigest()}
        )


def test_artifact_cap_refuses_the_101st_and_changes_nothing():
    status: dict = {}
    for i in range(100):
        assert contract.add_artifact(status, _artifact(i))
    assert not contract.add_artifact(status, _artifact(5))  # same location: already there
    with pytest.raises(contract.ArtifactCapError, match="already lists 100"):
        contract.add_artifact(status, _artifact(100))
    assert len(status["artifacts"]["generated"]) == 100


def test_usage_adds_up_to_the_cent_and_budget_check():
    status: dict = {}
    assert contract.add_usage(status, "m", 10, 5, Decimal("0.105")) == Decimal("0.105")
    total = contract.add_usage(status, "m2", 1, 1, Decimal("0.90"))
    assert status["usage"] == {"inputTokens": 11, "outputTokens": 6, "cost": "1.01", "model": "m2"}
    assert total == Decimal("1.01")  # 0.11 stored after the first call, + 0.90
    assert contract.over_budget(Decimal("1.00"), total)
    assert not contract.over_budget(Decimal("1.02"), total)
    assert not contract.over_budget(None, total)
    assert contract.over_budget(Decimal("0"), Decimal("0"))
    assert contract.budget_left(Decimal("1.00"), total) == 0
    with pytest.raises(contract.ContractError):
        contract.add_usage(status, "m", -1, 0, Decimal(0))


def test_termination_message_round_trips_to_the_operators_verdict():
    text = contract.termination_message(
        contract.BUDGET_EXCEEDED, "spent 2.00 of 1.00", spent="2.00"
    )
    assert runner_verdict(text) == ("BudgetExceeded", "spent 2.00 of 1.00")
    assert len(contract.termination_message("X", "m" * 10_000)) <= 4096


@pytest.mark.parametrize(
    "message", ["", "tests failed: 2", "[1]", '{"reason": "not camel"}', '{"message": "x"}']
)
def test_anything_else_is_not_a_verdict(message):
    assert runner_verdict(message) is None


def test_keys_are_prefixed_by_namespace_and_session():
    assert contract.artifact_key("runs/", "team-a", "s1", "out/r.txt") == "runs/team-a/s1/out/r.txt"
    assert contract.artifact_key("", "team-a", "s1", "r.txt") == "team-a/s1/r.txt"
    assert split_location("s3://bucket/a/b") == ("bucket", "a/b")
    assert split_location("bucket") == ("bucket", "")


@pytest.mark.parametrize("name", ["../x", "a/../../b", "/abs", "", "a b"])
def test_artifact_names_cannot_escape_the_prefix(name):
    with pytest.raises(contract.ContractError, match="relative path"):
        check_name(name)


def test_pvc_store_records_size_and_sha256(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("AMBIENT_PVC_MOUNT", str(tmp_path / "mnt"))
    src = tmp_path / "f.txt"
    src.write_bytes(b"abc")
    art = PvcStore("claim", "ns", "s").put("d/f.txt", src)
    assert art.location == "pvc://claim/ns/s/d/f.txt"
    assert art.size == 3
    assert art.checksum == "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert (tmp_path / "mnt" / "ns" / "s" / "d" / "f.txt").read_bytes() == b"abc"


def test_author_written_pricing_is_ignored_only_the_registry_prices():
    # framework.config.pricing is the Session author's: no cost is ever read from it.
    doc = contract.context_document(
        name="s1",
        namespace="team-a",
        uid="u-1",
        job_name="s1-a1",
        trigger={"source": "manual", "event": "test"},
        framework="langgraph",
        version="1",
        config={"pricing": {"m": {"inputPerMTok": "0", "outputPerMTok": "0"}}},
        policy={"modelConstraints": {"allowed": ["m"]}},
        artifacts={},
        timeout_seconds=60,
        pricing={"m": {"inputPerMTok": "3", "outputPerMTok": "15"}},
    )
    context = contract.Context.parse(json.dumps(doc))
    assert contract.price(context.pricing, "m", 1_000_000, 100_000) == Decimal("4.5")
    with pytest.raises(contract.ContractError, match="no price for model 'other'"):
        contract.price(context.pricing, "other", 1, 1)
    # without the admin's table there is no price at all, whatever the config says
    doc.pop("pricing")
    unpriced = contract.Context.parse(json.dumps(doc))
    assert unpriced.pricing == {}
    with pytest.raises(contract.ContractError, match="no price"):
        contract.price(unpriced.pricing, "m", 1, 1)


def test_blocked_tools_reach_the_context_and_the_defaults_fill_only_gaps():
    doc = contract.context_document(
        name="s1",
        namespace="team-a",
        uid="u-1",
        job_name="s1-a1",
        trigger={},
        framework="claude-code",
        version="1",
        config={},
        policy={"toolConstraints": {"allowed": ["Read"]}},
        artifacts={},
        timeout_seconds=60,
        blocked_tools=["Bash", "WebFetch", "Bash"],
    )
    context = contract.Context.parse(json.dumps(doc))
    assert context.allowed_tools == ["Read"]
    assert context.blocked_tools == ["Bash", "WebFetch"]
    env = {
        "ANTHROPIC_API_KEY": "ns-key",
        "AMBIENT_DEFAULT_ANTHROPIC_API_KEY": "cluster-key",
        "AMBIENT_DEFAULT_ANTHROPIC_BASE_URL": "https://gateway.example",
        "AMBIENT_DEFAULT_OPENAI_API_KEY": "",
    }
    contract.apply_default_credentials(env)
    assert env == {
        "ANTHROPIC_API_KEY": "ns-key",
        "ANTHROPIC_BASE_URL": "https://gateway.example",
    }


def test_the_context_document_is_what_context_reads() -> None:
    doc = contract.context_document(
        name="s1",
        namespace="team-a",
        uid="u-1",
        job_name="s1-a1",
        trigger={"source": "manual", "event": "test"},
        framework="script",
        version="1",
        config={"command": ["true"]},
        policy={"modelConstraints": {"allowed": ["m"]}},
        artifacts={"storage": {"type": "pvc", "location": "claim"}},
        timeout_seconds=60,
    )
    assert doc["schema"] == contract.CONTEXT_SCHEMA
    context = contract.Context.parse(json.dumps(doc))
    assert (context.name, context.namespace, context.job_name) == ("s1", "team-a", "s1-a1")
    assert context.config == {"command": ["true"]} and context.allowed_models == ["m"]
    assert context.storage == {"type": "pvc", "location": "claim"}
    assert contract.CONTEXT_PATH == "/var/run/ambient/session.json"


def test_append_history_cuts_values_to_the_crds_limit():
    """The API server refuses a longer value, and with it the whole status write."""
    status: dict = {}
    long = "x" * (MAX_HISTORY_VALUE + 10)
    contract.append_history(status, "s", "Step", {"out": long, "n": "1"}, "2026-03-01T00:00:00Z")
    assert status["history"][0]["data"] == {"out": long[:MAX_HISTORY_VALUE], "n": "1"}
