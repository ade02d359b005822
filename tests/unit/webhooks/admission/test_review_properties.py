"""Whatever an AdmissionReview holds, ``review`` decides it (issue 17, deliverable 4):
a Verdict, never an exception, and anything it cannot read is denied. And whatever bytes
reach POST /validate, the answer is a review or a 400, never an error page."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ambient.crds.models import NamespacePolicy
from ambient.crds.naming import runner_username
from ambient.runners import registry as runner_registry
from ambient.webhooks.admission.app import answer
from ambient.webhooks.admission.review import Identities, State, Verdict, review

NS = "team-alpha"
OPERATOR = "system:serviceaccount:ambient-system:ambient-operator"
EXAMPLES = int(os.environ.get("AMBIENT_FUZZ_EXAMPLES", "100"))
STATE = State(
    {NS: [NamespacePolicy.model_validate({"metadata": {"name": "p", "namespace": NS}})]},
    runner_registry.load(),
    Identities(frozenset({OPERATOR})),
    datetime(2026, 3, 10, tzinfo=UTC),
)

scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)  # what JSON from the API server holds
    | st.floats()
    | st.text(max_size=12)
)
anything = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=10,
)
entries = st.fixed_dictionaries(
    {
        "seq": st.integers(-1, 5),
        "id": st.sampled_from(["runner:a", "notify/x", "created"]) | st.text(max_size=8),
        "timestamp": st.just("2026-03-10T00:00:00Z") | st.text(max_size=5),
        "event": st.sampled_from(["Hello", "HistoryArchived", "Approved"]) | st.text(max_size=8),
    },
    optional={"data": st.dictionaries(st.text(max_size=5), st.text(max_size=10), max_size=2)},
)
sessions = st.fixed_dictionaries(
    {
        "metadata": st.fixed_dictionaries(
            {"name": st.just("s1"), "namespace": st.just(NS) | st.text(max_size=5)},
            optional={"annotations": st.dictionaries(st.text(max_size=20), anything, max_size=2)},
        ),
        "spec": st.fixed_dictionaries(
            {
                "trigger": st.just({"source": "manual", "event": "t", "payload": {}}) | anything,
                "framework": st.just({"type": "script"}) | anything,
            },
            optional={"policy": anything, "cancel": anything},
        ),
    },
    optional={
        "status": st.fixed_dictionaries(
            {},
            optional={
                "history": st.lists(entries, max_size=3),
                "usage": st.fixed_dictionaries(
                    {}, optional={"cost": st.sampled_from(["1.00", "0", "x"]) | anything}
                ),
                "phase": anything,
            },
        ),
        "kind": anything,
    },
)
users = st.fixed_dictionaries(
    {
        "username": st.sampled_from([OPERATOR, runner_username(NS, "s1"), "alice"])
        | st.text(max_size=10)
    },
    optional={"groups": st.lists(st.text(max_size=8), max_size=2) | anything},
)
requests = st.fixed_dictionaries(
    {
        "uid": st.text(max_size=8),
        "operation": st.sampled_from(["CREATE", "UPDATE", "DELETE", "CONNECT"]) | anything,
        "resource": st.fixed_dictionaries(
            {
                "group": st.just("ambient.ai") | st.text(max_size=5),
                "resource": st.sampled_from(["sessions", "namespacepolicies", "pods"]),
            }
        )
        | anything,
        "object": sessions | anything,
        "userInfo": users | anything,
    },
    optional={
        "subResource": st.sampled_from(["status", ""]) | anything,
        "oldObject": sessions | anything,
        "namespace": st.just(NS) | anything,
    },
)


@settings(max_examples=EXAMPLES, suppress_health_check=list(HealthCheck))
@given(requests)
def test_any_review_is_decided_never_raised(request: dict[str, Any]) -> None:
    verdict = review(request, STATE)
    assert isinstance(verdict, Verdict)
    assert verdict.allowed or verdict.reasons  # a denial always says why


@settings(max_examples=EXAMPLES, suppress_health_check=list(HealthCheck))
@given(st.binary(max_size=200) | requests.map(lambda r: orjson.dumps({"request": r})))
def test_any_body_gets_a_review_or_a_400(body: bytes) -> None:
    def decide(review_body: dict[str, Any]) -> dict[str, Any]:
        request = review_body.get("request")
        verdict = review(request if isinstance(request, dict) else {}, STATE)
        return {"response": {"allowed": verdict.allowed}}

    status, out = answer(decide, body)
    assert status in (200, 400)
    assert isinstance(orjson.loads(out), dict)
