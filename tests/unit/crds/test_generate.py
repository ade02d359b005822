"""CRD generation: the committed YAML matches the models, and the schemas are structural."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel, Field

from ambient.common.store import keys
from ambient.crds import generate, models, naming
from ambient.crds.history import CARRIED_KEY

UID = "0d9a3b4c-1111-4222-8333-444455556666"

FORBIDDEN_KEYS = {"$ref", "$defs", "anyOf", "allOf", "oneOf", "title", "examples", "const"}
PRESERVE = "x-kubernetes-preserve-unknown-fields"


def _root(crd: dict[str, Any]) -> dict[str, Any]:
    root: dict[str, Any] = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return root


def _nodes(node: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every schema node with its path (property names are not mistaken for keywords)."""
    yield path, node
    for name, child in (node.get("properties") or {}).items():
        yield from _nodes(child, f"{path}.{name}")
    if isinstance(node.get("items"), dict):
        yield from _nodes(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        yield from _nodes(node["additionalProperties"], f"{path}{{}}")


def _at(root: dict[str, Any], dotted: str) -> dict[str, Any]:
    node = root
    for part in dotted.split("."):
        node = node["items"] if part == "[]" else node["properties"][part]
    return node


@pytest.fixture(scope="module")
def session() -> dict[str, Any]:
    return _root(generate.session_crd())


@pytest.fixture(scope="module")
def policy() -> dict[str, Any]:
    return _root(generate.policy_crd())


CRDS = [
    pytest.param(generate.session_crd, id="sessions"),
    pytest.param(generate.policy_crd, id="policies"),
]


# --- drift -----------------------------------------------------------------------------


def test_committed_yaml_matches_models() -> None:
    """If this fails, run `python -m ambient.crds.generate` (make crds) and commit."""
    assert generate.main(["--check"]) == 0


def test_rendered_covers_both_committed_files() -> None:
    names = sorted(p.name for p in generate.rendered())
    assert names == ["ambient.ai_namespacepolicies.yaml", "ambient.ai_sessions.yaml"]
    assert all(p.parent == generate.HERE for p in generate.rendered())


def test_check_reports_drift(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(generate, "HERE", tmp_path)
    assert generate.main(["--check"]) == 1, "missing files are drift"

    assert generate.main([]) == 0
    files = sorted(tmp_path.glob("*.yaml"))
    assert [f.name for f in files] == [
        "ambient.ai_namespacepolicies.yaml",
        "ambient.ai_sessions.yaml",
    ]
    assert generate.main(["--check"]) == 0

    target = tmp_path / "ambient.ai_sessions.yaml"
    target.write_text(
        target.read_text().replace("shortNames:\n    - sess", "shortNames:\n    - ses")
    )
    capsys.readouterr()
    assert generate.main(["--check"]) == 1
    err = capsys.readouterr().err
    assert "ambient.ai_sessions.yaml" in err
    assert "ambient.ai_namespacepolicies.yaml" not in err


def test_rendered_yaml_parses_back_to_the_crd() -> None:
    by_name = {p.name: text for p, text in generate.rendered().items()}
    text = by_name["ambient.ai_sessions.yaml"]
    assert text.startswith("# Generated from crds/models.py")
    assert yaml.safe_load(text) == generate.session_crd()
    assert generate.rendered() == generate.rendered(), "generation is deterministic"


# --- structural schema ---------------------------------------------------------------


@pytest.mark.parametrize("make", CRDS)
def test_no_non_structural_keywords(make: Any) -> None:
    bad = [(path, sorted(FORBIDDEN_KEYS & node.keys())) for path, node in _nodes(_root(make()))]
    assert [b for b in bad if b[1]] == []


@pytest.mark.parametrize("make", CRDS)
def test_every_node_is_typed(make: Any) -> None:
    untyped = [
        path
        for path, node in _nodes(_root(make()))
        if "type" not in node and not node.get(PRESERVE)
    ]
    assert untyped == []


@pytest.mark.parametrize("make", CRDS)
def test_nodes_with_properties_are_objects(make: Any) -> None:
    wrong = [
        path
        for path, node in _nodes(_root(make()))
        if "properties" in node and node.get("type") != "object"
    ]
    assert wrong == []


@pytest.mark.parametrize("make", CRDS)
def test_no_null_or_container_defaults(make: Any) -> None:
    bad = [
        path
        for path, node in _nodes(_root(make()))
        if "default" in node
        and (node["default"] is None or isinstance(node["default"], dict | list))
    ]
    assert bad == []


@pytest.mark.parametrize("make", CRDS)
def test_every_property_is_described(make: Any) -> None:
    """What `kubectl explain` shows: every field under spec and status has a description."""
    root = _root(make())
    missing = [
        path
        for top in ("spec", "status")
        for path, node in _nodes(root["properties"][top], top)
        if not path.endswith(("[]", "}")) and not node.get("description")
    ]
    assert missing == []


@pytest.mark.parametrize(
    ("dotted", "type_"),
    [
        ("spec.timeoutSeconds", "integer"),
        ("spec.trigger.deliveryId", "string"),
        ("spec.trigger.payloadRef", "object"),
        ("spec.policy.modelConstraints.budget", "string"),
        ("status.reason", "string"),
        ("status.message", "string"),
        ("status.workload.jobName", "string"),
        ("status.startTime", "string"),
        ("status.conditions.[].observedGeneration", "integer"),
    ],
)
def test_optional_fields_collapse_to_their_type(
    session: dict[str, Any], dotted: str, type_: str
) -> None:
    node = _at(session, dotted)
    assert node["type"] == type_
    assert "anyOf" not in node
    assert "nullable" not in node
    assert node.get("description"), "the field's own description survives the collapse"


def test_optional_fields_keep_their_constraints(session: dict[str, Any]) -> None:
    assert _at(session, "spec.timeoutSeconds")["minimum"] == 1
    assert _at(session, "spec.timeoutSeconds")["maximum"] == 7 * 24 * 3600
    assert _at(session, "spec.trigger.deliveryId")["maxLength"] == 128
    budget = _at(session, "spec.policy.modelConstraints.budget")
    assert budget["pattern"].startswith("^(0|[1-9]")
    ref = _at(session, "spec.trigger.payloadRef")
    assert ref["required"] == ["location", "size", "sha256"]
    assert ref["description"].startswith("Set instead of payload")


@pytest.mark.parametrize("dotted", ["spec.trigger.payload", "spec.framework.config"])
def test_free_form_fields_preserve_unknown(session: dict[str, Any], dotted: str) -> None:
    node = _at(session, dotted)
    assert node[PRESERVE] is True
    assert node["type"] == "object"
    assert "properties" not in node


def test_the_payload_is_one_atomic_value(session: dict[str, Any]) -> None:
    """Field ownership for the payload as a whole: managedFields do not list its keys."""
    assert _at(session, "spec.trigger.payload")["x-kubernetes-map-type"] == "atomic"


@pytest.mark.parametrize("source", ["github", "jira", "slack"])
def test_api_key_union_preserves_unknown(policy: dict[str, Any], source: str) -> None:
    """str | list[str] cannot be structural: the field preserves what it is given."""
    node = _at(policy, f"spec.webhookAuth.apiKeys.{source}")
    assert node[PRESERVE] is True
    assert "anyOf" not in node and "default" not in node
    assert node["description"].startswith("Hash of the")


def test_history_is_an_append_only_atomic_list(session: dict[str, Any]) -> None:
    """One field to the API server's field tracking (its managedFields list no entry),
    its rules run once per write; append-only by the list's own transition rule."""
    history = _at(session, "status.history")
    assert history["type"] == "array"
    assert history["x-kubernetes-list-type"] == "atomic"
    assert "x-kubernetes-list-map-keys" not in history
    assert history["maxItems"] == 1000
    rules = {v["message"]: v["rule"] for v in history["x-kubernetes-validations"]}
    # The window: consecutive seqs from wherever the archives end (no size rule: the
    # window shrinks when a prefix is archived; the status rules govern that).
    (consecutive,) = [r for m, r in rules.items() if "consecutive seq" in m]
    assert "e.seq == self[0].seq + i" in consecutive
    (append_only,) = [r for m, r in rules.items() if "cannot be changed" in m]
    assert "oldSelf.all(o, " in append_only and "== o" in append_only
    assert "self.size() >= oldSelf.size()" not in rules.values()
    item = history["items"]
    assert item["required"] == ["seq", "id", "timestamp", "event"]
    # No per-entry rule: an atomic list's entries have no oldSelf, and one list rule
    # costs one evaluation per write instead of one per entry.
    assert "x-kubernetes-validations" not in item
    data = item["properties"]["data"]
    assert data["additionalProperties"] == {"type": "string", "maxLength": 256 * 1024}
    assert data["maxProperties"] == 32
    # Values are held to 4096 characters; only the operator's carried list may be longer.
    (limit,) = [r for r in rules.values() if "e.data.all" in r]
    assert "<= 4096" in limit
    assert f"k == '{CARRIED_KEY}'" in limit


def test_status_history_cannot_be_removed(session: dict[str, Any]) -> None:
    rules = [v["rule"] for v in session["properties"]["status"]["x-kubernetes-validations"]]
    assert rules[0] == "!has(oldSelf.history) || has(self.history)"
    messages = [v["message"] for v in session["properties"]["status"]["x-kubernetes-validations"]]
    assert any("unless an archive" in m for m in messages)
    assert any("grows by one record per write" in m for m in messages)
    history = session["properties"]["status"]["properties"]["history"]
    # The tail rule is the list's own: it runs whenever both lists are there.
    assert any("from the end" in v["message"] for v in history["x-kubernetes-validations"])


def test_the_session_as_a_whole_keeps_status_and_its_history(session: dict[str, Any]) -> None:
    """Only a rule on the whole object sees a dropped status (the status-level rules have
    no oldSelf then) and the Session's name (a new archive record must be its own)."""
    rules = session["x-kubernetes-validations"]
    assert rules == models.SESSION_RULES
    assert "cannot be removed once written" in rules[0]["message"]
    assert "oldSelf.?status.?history" in rules[0]["rule"]
    assert "self.metadata.name" in rules[1]["rule"]
    assert "oldSelf" not in generate.policy_crd()["spec"]["versions"][0]["schema"][
        "openAPIV3Schema"
    ].get("x-kubernetes-validations", "")
    # The name's bound keeps the rule's estimated cost within the API server's budget.
    assert session["properties"]["metadata"]["properties"]["name"]["maxLength"] == 253


def test_dropping_the_archives_whole_is_refused_at_status_level(session: dict[str, Any]) -> None:
    rules = [v["rule"] for v in session["properties"]["status"]["x-kubernetes-validations"]]
    expected = (
        "self.?historyArchives.orValue([]).size() >= oldSelf.?historyArchives.orValue([]).size()"
    )
    assert expected in rules


def _archive_key(prefix: str, namespace: str, name: str, first: int, last: int) -> str:
    return keys.history_archive_key(prefix, namespace, name, UID, from_seq=first, to_seq=last)


@pytest.mark.parametrize(
    ("location", "ok"),
    [
        (keys.location("bkt", _archive_key("", "ns", "s", 0, 9)), True),
        (keys.location("my.bkt", _archive_key("a/b", "ns", "s.x", 5, 7)), True),
        ("s3://bkt/k.json", False),
        (f"s3://bkt/ns/s/{UID}/history/0-9.json.bak", False),
        (f"s3://bkt/ns/s/{UID}/history/../0-9.json", False),
        ("s3://bkt/ns/s/not-a-uid/history/0-9.json", False),
        (f"s3://b/ns/s/{UID}/history/0-9.json", False),
        (f"pvc://bkt/ns/s/{UID}/history/0-9.json", False),
        (f"s3://bkt//ns/s/{UID}/history/0-9.json", False),
    ],
)  # fmt: skip
def test_the_archive_location_shape_is_the_operators_key(location: str, ok: bool) -> None:
    """The CEL rule's pattern (RE2; the same in Python's re) accepts exactly the keys
    common/store/keys.history_archive_key lays out."""
    assert bool(re.fullmatch(models.HISTORY_ARCHIVE_LOCATION, location)) is ok


def test_history_archives_are_an_append_only_map_list(session: dict[str, Any]) -> None:
    archives = _at(session, "status.historyArchives")
    assert archives["x-kubernetes-list-type"] == "map"
    assert archives["x-kubernetes-list-map-keys"] == ["fromSeq"]
    assert archives["maxItems"] == 1000
    rules = [v["rule"] for v in archives["x-kubernetes-validations"]]
    assert "self.size() >= oldSelf.size()" in rules
    item = archives["items"]
    assert set(item["required"]) == {
        "fromSeq",
        "toSeq",
        "count",
        "location",
        "sha256",
        "archivedAt",
    }
    assert "self == oldSelf" in [v["rule"] for v in item["x-kubernetes-validations"]]


def test_conditions_are_a_map_list_keyed_by_type(session: dict[str, Any]) -> None:
    conditions = _at(session, "status.conditions")
    assert conditions["x-kubernetes-list-type"] == "map"
    assert conditions["x-kubernetes-list-map-keys"] == ["type"]
    assert "type" in conditions["items"]["required"]


def test_trigger_is_immutable(session: dict[str, Any]) -> None:
    trigger = _at(session, "spec.trigger")
    assert {"rule": "self == oldSelf", "message": "spec.trigger is immutable"} in trigger[
        "x-kubernetes-validations"
    ]
    assert session["required"] == ["spec"]
    assert _at(session, "spec")["required"] == ["trigger", "framework"]


def test_trigger_is_explained(session: dict[str, Any]) -> None:
    """`kubectl explain session.spec.trigger` shows these."""
    trigger = _at(session, "spec.trigger")
    assert "started the Session" in trigger["description"]
    fields = trigger["properties"]
    assert set(fields) == {"source", "event", "payload", "payloadRef", "deliveryId", "replyTo"}
    for name, node in fields.items():
        assert node.get("description"), name
    assert fields["source"]["enum"] == [
        "github",
        "jira",
        "slack",
        "alertmanager",
        "manual",
        "api",
        "generic",
    ]


def test_enums_and_scalar_defaults_survive(session: dict[str, Any]) -> None:
    assert _at(session, "spec.framework.version")["default"] == "latest"
    assert _at(session, "status.phase")["enum"] == ["Pending", "Running", "Completed", "Failed"]
    assert _at(session, "spec.artifacts.storage.type")["enum"] == ["s3", "pvc", "external"]


def test_session_printer_columns_and_names() -> None:
    crd = generate.session_crd()
    version = crd["spec"]["versions"][0]
    columns = version["additionalPrinterColumns"]
    default_columns = [c["name"] for c in columns if not c.get("priority")]
    assert default_columns == ["Phase", "Reason", "Framework", "Source", "Age"]
    by_name = {c["name"]: c for c in columns}
    assert by_name["Phase"]["jsonPath"] == ".status.phase"
    assert by_name["Framework"]["jsonPath"] == ".spec.framework.type"
    assert by_name["Source"]["jsonPath"] == ".spec.trigger.source"
    assert by_name["Age"] == {
        "name": "Age",
        "type": "date",
        "jsonPath": ".metadata.creationTimestamp",
    }
    names = crd["spec"]["names"]
    assert names["shortNames"] == ["sess"]
    assert names["categories"] == ["ambient"]
    assert names["kind"] == "Session" and names["plural"] == "sessions"
    assert crd["metadata"]["name"] == "sessions.ambient.ai"
    assert crd["spec"]["scope"] == "Namespaced"
    assert version["subresources"] == {"status": {}}
    assert version["name"] == "v1alpha1" and version["served"] and version["storage"]


def test_policy_names() -> None:
    crd = generate.policy_crd()
    names = crd["spec"]["names"]
    assert names["categories"] == ["ambient"]
    assert "nspol" in names["shortNames"]
    assert crd["metadata"]["name"] == "namespacepolicies.ambient.ai"


# --- the conversion on its own --------------------------------------------------------


class _Inner(BaseModel):
    """Inner doc."""

    x: int = 0


class _Outer(BaseModel):
    """Outer doc."""

    model_config = {"use_attribute_docstrings": True}

    inner: _Inner | None = None
    """Field doc wins over the class doc."""
    tags: list[str] = Field(default_factory=list)
    """Tags."""
    labels: dict[str, str] = Field(default_factory=dict)
    """Labels."""
    anything: dict[str, Any] = Field(default_factory=dict)
    """Anything."""
    kind: str = "fixed"
    """Kind."""


def test_structural_inlines_refs_and_collapses_optionals() -> None:
    schema = generate.model_schema(_Outer)
    inner = schema["properties"]["inner"]
    assert inner == {
        "type": "object",
        "description": "Field doc wins over the class doc.",
        "properties": {"x": {"type": "integer", "default": 0}},
    }
    assert schema["properties"]["tags"] == {
        "type": "array",
        "items": {"type": "string"},
        "description": "Tags.",
    }
    assert schema["properties"]["labels"]["additionalProperties"] == {"type": "string"}
    assert schema["properties"]["anything"] == {
        "type": "object",
        "description": "Anything.",
        PRESERVE: True,
    }
    assert schema["properties"]["kind"]["default"] == "fixed"
    assert "title" not in schema and "$defs" not in schema


def test_structural_turns_const_into_enum() -> None:
    assert generate.structural({"const": "a", "type": "string"}, {}) == {
        "enum": ["a"],
        "type": "string",
    }


def test_structural_is_pure() -> None:
    raw = _Outer.model_json_schema(by_alias=True)
    before = yaml.safe_dump(raw)
    generate.structural(raw, raw.get("$defs", {}))
    assert yaml.safe_dump(raw) == before


@pytest.mark.parametrize("ref", ["webhookAuth", "notifications"])
def test_secret_names_carry_the_dns_subdomain_pattern(policy: dict[str, Any], ref: str) -> None:
    """The API server refuses a Secret name that could walk an API path (finding 2)."""
    node = _at(policy, f"spec.{ref}.signingSecretRef.name")
    assert node["pattern"] == naming.DNS_SUBDOMAIN_PATTERN
    assert node["maxLength"] == 253
    assert re.fullmatch(node["pattern"][1:-1], "ingress-signing")
    assert not re.fullmatch(node["pattern"][1:-1], "../../team-alpha/secrets/x")


def test_a_pvc_location_is_checked_by_cel(session: dict[str, Any]) -> None:
    rules = _at(session, "spec.artifacts.storage")["x-kubernetes-validations"]
    (rule,) = [r for r in rules if "pvc" in r["rule"]]
    # '\.' is no escape in a CEL string literal: the rule spells it [.]
    assert "\\" not in rule["rule"] and "[.]" in rule["rule"]
    assert "PersistentVolumeClaim" in rule["message"]
