"""The admission fast path on the real API server (issue 19, deliverable 5): the
ValidatingAdmissionPolicy refuses what the webhook refuses, in the same words; the writes
the matchConditions skip never reach the webhook (its own counters say so); the writes the
policies cannot vouch for still do.

One webhook process serves two registrations: the fast path (``registrations``) for
namespaces labelled ``<run>-fast``, the webhook alone (``fast_path=False``) for
``<run>-plain``, so the same Session can be refused by each.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from ambient.crds.naming import ANNOTATION_APPROVED_BY, ANNOTATION_CREATED_BY_USER
from ambient.runners import registry
from ambient.webhooks.admission.registration import registrations

from .conftest import admission_webhook

LABEL = "ambient.ai/admission-fastpath-test"
OPERATOR_USER = "kubernetes-admin"  # kubectl's identity here: its status writes are the operator's


@pytest.fixture(scope="module")
def webhook(cluster: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    run = uuid.uuid4().hex[:8]
    env = {"AMBIENT_ADMISSION_OPERATOR_USERNAMES": OPERATOR_USER}
    with admission_webhook(cluster, tmp_path_factory.mktemp("fastpath"), env) as hook:
        served = cluster.kubectl(
            "api-resources", "--api-group=admissionregistration.k8s.io", "-o", "name"
        ).stdout
        mutating_policy = "mutatingadmissionpolicies.admissionregistration.k8s.io" in served
        items = []
        for mode in ("fast", "plain"):
            items += registrations(
                hook.ca.read_bytes(),
                registry.load(),
                url=f"{hook.url}/validate",
                name=f"ambient-fastpath-test-{run}-{mode}",
                match_labels={LABEL: f"{run}-{mode}"},
                operator_usernames=[OPERATOR_USER],
                fast_path=mode == "fast",
                mutating_policy=mutating_policy,
            )
        try:
            cluster.apply({"apiVersion": "v1", "kind": "List", "items": items})
            yield {
                "run": run,
                "metrics": lambda: hook.get("/metrics"),
                "mutating_policy": mutating_policy,
            }
        finally:
            for item in reversed(items):
                cluster.kubectl(
                    "delete", item["kind"].lower(), item["metadata"]["name"],
                    "--ignore-not-found", check=False,
                )  # fmt: skip


def _calls(webhook: dict[str, Any]) -> tuple[float, float]:
    """(validating reviews of Sessions and their status, mutating reviews) answered so far."""
    validated = stamped = 0.0
    for line in webhook["metrics"]().splitlines():
        if line.startswith("ambient_admission_decisions_total{") and "sessions" in line:
            validated += float(line.rsplit(" ", 1)[1])
        if line.startswith("ambient_admission_stamp_reviews_total{"):
            stamped += float(line.rsplit(" ", 1)[1])
    return validated, stamped


POLICY = {
    "apiVersion": "ambient.ai/v1alpha1",
    "kind": "NamespacePolicy",
    "metadata": {"name": "policy"},
    "spec": {
        "models": {"allowed": ["claude-3-sonnet", "claude-3-haiku"], "budget": {"monthly": "100"}},
        "tools": {"allowed": ["Bash", "Read", "rm"], "blocked": ["RM", "WebFetch"]},
        "approval": {"required": False, "approvers": ["group:team-leads"]},
    },
}


def _namespace(cluster: Any, webhook: dict[str, Any], mode: str, policy: bool = True) -> str:
    name = f"fp-{mode}-{uuid.uuid4().hex[:6]}"
    labels = {LABEL: f"{webhook['run']}-{mode}"}
    cluster.core.create_namespace({"metadata": {"name": name, "labels": labels}})
    if policy:
        cluster.apply(POLICY, name)
        # 95.5 of the month's 100 spent: 4.50 left.
        month = datetime.now(UTC).strftime("%Y-%m")
        cluster.kubectl(
            "patch", "namespacepolicy", "policy", "-n", name, "--subresource=status",
            "--type=merge", "-p",
            json.dumps({"status": {"month": month, "monthToDateSpend": "95.5"}}),
        )  # fmt: skip
    return name


@pytest.fixture(scope="module")
def namespaces(cluster: Any, webhook: dict[str, Any]) -> Iterator[dict[str, str]]:
    made = {mode: _namespace(cluster, webhook, mode) for mode in ("fast", "plain")}
    _wait_until_in_force(cluster, webhook, made)
    yield made
    for name in made.values():
        cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


def _wait_until_in_force(cluster: Any, webhook: dict[str, Any], made: dict[str, str]) -> None:
    """The API server takes new policies, bindings, matchConditions and the policy's spend
    from its informers a moment after they are written: wait (with dry runs, which change
    nothing) until a spend-dependent violation is refused by each path and a compliant
    create in the fast namespace reaches no webhook."""
    over = _session("probe-over", **VIOLATIONS["budget-over-what-is-left"])

    def dry(body: dict[str, Any], namespace: str) -> subprocess.CompletedProcess[str]:
        return cluster.kubectl(
            "create", "--dry-run=server", "-n", namespace, "-f", "-",
            stdin=json.dumps(body), check=False,
        )  # fmt: skip

    def in_force() -> bool:
        refused = dry(over, made["fast"])
        if refused.returncode == 0 or "ValidatingAdmissionPolicy" not in refused.stderr:
            return False
        if dry(over, made["plain"]).returncode == 0:
            return False
        before = _calls(webhook)
        if dry(_session("probe-ok"), made["fast"]).returncode != 0:
            return False
        after = _calls(webhook)
        return after[0] == before[0] and (not webhook["mutating_policy"] or after == before)

    cluster.wait_for("the admission fast path to be in force", in_force, timeout=60)


def _session(name: str, **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "apiVersion": "ambient.ai/v1alpha1",
        "kind": "Session",
        "metadata": {"name": name},
        "spec": {
            "trigger": {"source": "manual", "event": "test", "payload": {}},
            "framework": {"type": "script", "config": {"command": ["true"]}},
            "policy": {
                "modelConstraints": {"allowed": ["claude-3-sonnet"], "budget": "1.00"},
                "toolConstraints": {"allowed": ["Bash"]},
            },
        },
    }
    body["spec"].update(spec)
    return body


def _create(cluster: Any, body: dict[str, Any], namespace: str) -> subprocess.CompletedProcess[str]:
    return cluster.kubectl(
        "create", "-n", namespace, "-f", "-", stdin=json.dumps(body), check=False
    )


def _reason(stderr: str) -> str:
    """The refusal's own words, after the API server's prefix (which names the webhook or
    the policy and binding)."""
    for marker in ("denied the request: ", "denied request: "):
        if marker in stderr:
            return stderr.split(marker, 1)[1].strip()
    raise AssertionError(f"not an admission refusal: {stderr}")


VIOLATIONS = {
    "models": {
        "policy": {
            "modelConstraints": {"allowed": ["claude-3-opus", "claude-3-haiku", "gpt-9"]},
        }
    },
    "budget-over-what-is-left": {
        "policy": {"modelConstraints": {"allowed": ["claude-3-sonnet"], "budget": "4.51"}}
    },
    "budget-missing": {"policy": {"modelConstraints": {"allowed": ["claude-3-sonnet"]}}},
    "tools": {
        "policy": {
            "modelConstraints": {"budget": "4.5"},
            "toolConstraints": {"allowed": ["bash", "Rm", "WEBFETCH", "Exec"]},
        }
    },
    "framework": {"framework": {"type": "no-such-runner", "config": {}}},
    "framework-version": {"framework": {"type": "script", "version": "9.9", "config": {}}},
    "everything": {
        "framework": {"type": "script", "version": "0.1"},
        "policy": {
            "modelConstraints": {"allowed": ["gpt-9"], "budget": "100"},
            "toolConstraints": {"allowed": ["Exec"]},
        },
    },
}


@pytest.mark.parametrize("case", sorted(VIOLATIONS))
def test_a_violation_is_refused_in_the_same_words_by_the_policy_and_by_the_webhook(
    cluster: Any, webhook: dict[str, Any], namespaces: dict[str, str], case: str
) -> None:
    body = _session(f"v-{case}", **VIOLATIONS[case])
    before = _calls(webhook)
    fast = _create(cluster, body, namespaces["fast"])
    after = _calls(webhook)
    plain = _create(cluster, body, namespaces["plain"])
    assert fast.returncode != 0 and plain.returncode != 0, (fast.stderr, plain.stderr)
    assert "ValidatingAdmissionPolicy" in fast.stderr, fast.stderr  # the API server decided
    assert 'admission webhook "validate.ambient.ai"' in plain.stderr, plain.stderr
    words = _reason(fast.stderr).replace(namespaces["fast"], "<ns>")
    assert words == _reason(plain.stderr).replace(namespaces["plain"], "<ns>")
    assert words.startswith("ambient.ai admission: ")
    assert after[0] == before[0], "the policy decided: the validating webhook was not asked"


def test_a_compliant_create_reaches_neither_webhook_and_names_its_creator_where_approved(
    cluster: Any, webhook: dict[str, Any], namespaces: dict[str, str]
) -> None:
    """The creator is stamped where the four-eyes rule needs it (a Session that waits for
    approval), by the MutatingAdmissionPolicy where served; other creates are not mutated."""
    before = _calls(webhook)
    for i in range(5):
        body = _session(f"ok-{i}", policy={**_session("x")["spec"]["policy"],
                                           "approvalRequired": i < 2})  # fmt: skip
        made = _create(cluster, body, namespaces["fast"])
        assert made.returncode == 0, made.stderr
    validated, stamped = _calls(webhook)
    assert validated == before[0]

    def creator(name: str, namespace: str) -> str | None:
        got = cluster.kubectl("get", "session", name, "-n", namespace, "-o", "json").stdout
        annotations = json.loads(got)["metadata"].get("annotations") or {}
        return annotations.get(ANNOTATION_CREATED_BY_USER)

    assert [creator(f"ok-{i}", namespaces["fast"]) for i in range(5)] == [
        OPERATOR_USER, OPERATOR_USER, None, None, None
    ]  # fmt: skip
    if webhook["mutating_policy"]:  # stamped by the MutatingAdmissionPolicy
        assert stamped == before[1]
    else:  # stamped by the mutating webhook, called for the two that need it
        assert stamped == before[1] + 2
    # The same creates through the webhook alone: every one is reviewed by both, and the
    # webhook stamps the same ones.
    for i in (0, 4):
        body = _session(f"ok-{i}", policy={**_session("x")["spec"]["policy"],
                                           "approvalRequired": i == 0})  # fmt: skip
        assert _create(cluster, body, namespaces["plain"]).returncode == 0
    assert _calls(webhook) == (validated + 2, stamped + 2)
    assert creator("ok-0", namespaces["plain"]) == OPERATOR_USER
    assert creator("ok-4", namespaces["plain"]) is None


def test_compliant_creates_of_every_shape_the_rules_read_are_decided_inside_the_api_server(
    cluster: Any, webhook: dict[str, Any], namespaces: dict[str, str]
) -> None:
    """The edges of the rules' cheaper forms: exactly what is left of the month (4.50, in
    doubles within half a cent), a budget of 0, a tool spelled otherwise than the policy
    spells it, the registry's version named or 'latest', annotations that are not marks,
    storage the webhook need not check, a config with a list, a map and other characters:
    each admitted with no review by the validating webhook."""
    base = _session("x")["spec"]["policy"]
    shapes: list[dict[str, Any]] = [
        _session("edge-left", policy={**base, "modelConstraints": {"budget": "4.50"}}),
        _session("edge-zero", policy={**base, "modelConstraints": {"budget": "0"}}),
        _session("edge-case", policy={**base, "toolConstraints": {"allowed": ["bash", "READ"]}}),
        _session("edge-named", framework={"type": "script", "version": "1.0", "config": {}}),
        _session("edge-latest", framework={"type": "script", "version": "latest"}),
        {**_session("edge-noted"), "metadata": {"name": "edge-noted",
                                                "annotations": {"team": "a"}}},
        {**_session("edge-mine"), "metadata": {"name": "edge-mine", "annotations": {
            ANNOTATION_CREATED_BY_USER: OPERATOR_USER}}},
        _session("edge-external", artifacts={"storage": {"type": "external",
                                                        "location": "s3://elsewhere/x"}}),
        _session("edge-config", framework={"type": "script", "config": {
            "command": ["echo", "h\u00e9llo \U0001f600"], "env": {"A": "1", "N": 2},
            "retries": 3, "dry": False, "none": None}}),
    ]  # fmt: skip
    before = _calls(webhook)[0]
    for body in shapes:
        made = _create(cluster, body, namespaces["fast"])
        assert made.returncode == 0, (body["metadata"]["name"], made.stderr)
    assert _calls(webhook)[0] == before, "decided inside the API server: no review"
    # Just over what is left, by the smallest step: refused by the policy itself.
    over = _session("edge-over", policy={**base, "modelConstraints": {"budget": "4.51"}})
    refused = _create(cluster, over, namespaces["fast"])
    assert refused.returncode != 0 and "ValidatingAdmissionPolicy" in refused.stderr


def test_writes_the_policy_cannot_vouch_for_still_reach_the_webhook(
    cluster: Any, webhook: dict[str, Any], namespaces: dict[str, str]
) -> None:
    ns = namespaces["fast"]
    checks = [
        # A mark that needs the approver list and who sets it.
        (
            {
                **_session("marked"),
                "metadata": {"name": "marked", "annotations": {ANNOTATION_APPROVED_BY: "eve"}},
            },
            f"annotation {ANNOTATION_APPROVED_BY} must name who sets it",
        ),
        # A creator other than the requester, on a Session that waits for no approval
        # (nothing stamps it there): refused, not corrected.
        (
            {
                **_session("forged"),
                "metadata": {
                    "name": "forged",
                    "annotations": {ANNOTATION_CREATED_BY_USER: "someone-else"},
                },
            },
            f"annotation {ANNOTATION_CREATED_BY_USER} names who creates the Session",
        ),
        # A config too large to be sure of in CEL: the webhook measures it.
        (
            _session(
                "large",
                framework={"type": "script", "config": {"text": "x" * (70 * 1024)}},
            ),
            "spec.framework.config is",
        ),
        # A storage location: the webhook's prefix rule.
        (
            _session("elsewhere", artifacts={"storage": {"type": "s3", "location": "b/other/x"}}),
            "is outside namespace",
        ),
    ]
    for body, words in checks:
        before = _calls(webhook)[0]
        refused = _create(cluster, body, ns)
        assert refused.returncode != 0 and words in refused.stderr, refused.stderr
        assert 'admission webhook "validate.ambient.ai"' in refused.stderr
        assert _calls(webhook)[0] == before + 1
    # Something the webhook reviews and admits: a small config nested deeper than CEL sizes.
    before = _calls(webhook)[0]
    deep = _session("deep", framework={"type": "script", "config": {"a": {"b": {"c": "d"}}}})
    assert _create(cluster, deep, ns).returncode == 0
    assert _calls(webhook)[0] == before + 1


def test_updates_reach_the_webhooks_only_when_they_change_what_they_check(
    cluster: Any, webhook: dict[str, Any], namespaces: dict[str, str]
) -> None:
    ns = namespaces["fast"]
    assert _create(cluster, _session("upd"), ns).returncode == 0

    def patch(*extra: str, body: dict[str, Any]) -> subprocess.CompletedProcess[str]:
        return cluster.kubectl(
            "patch", "session", "upd", "-n", ns, "--type=merge", *extra, "-p", json.dumps(body),
            check=False,
        )  # fmt: skip

    before = _calls(webhook)
    assert patch(body={"metadata": {"labels": {"team": "a"}}}).returncode == 0
    status = patch("--subresource=status", body={"status": {"message": "working"}})
    assert status.returncode == 0, status.stderr
    assert _calls(webhook) == before, "a label and an operator's status message: no review"
    # Usage reported: the webhook checks it only grows.
    used = patch("--subresource=status", body={"status": {"usage": {"inputTokens": 5}}})
    assert used.returncode == 0, used.stderr
    assert _calls(webhook)[0] == before[0] + 1
    # A spec change: both webhooks (the canceller is stamped, the spec checked).
    before = _calls(webhook)
    assert patch(body={"spec": {"cancel": True}}).returncode == 0
    assert _calls(webhook) == (before[0] + 1, before[1] + 1)
    changed = patch(body={"spec": {"timeoutSeconds": 60}})
    assert changed.returncode != 0 and "cannot change after the Session is created" in (
        changed.stderr
    )


def test_a_namespace_without_a_namespacepolicy_is_refused(
    cluster: Any, webhook: dict[str, Any]
) -> None:
    bare = _namespace(cluster, webhook, "fast", policy=False)
    try:
        refused = _create(cluster, _session("nopolicy"), bare)
        assert refused.returncode != 0
        assert "needs-a-namespacepolicy" in refused.stderr and "no params found" in refused.stderr
    finally:
        cluster.kubectl("delete", "namespace", bare, "--wait=false", check=False)
