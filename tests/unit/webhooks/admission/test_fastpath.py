"""The admission fast path's registration (pure): what is registered, in which order, and
the chart's copy of the CEL. Its behaviour on the real API server is
tests/integration/test_admission_fastpath.py."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from ambient.crds.naming import (
    ANNOTATION_APPROVED_BY,
    ANNOTATION_CANCELLED_BY,
    ANNOTATION_REPLAYED_BY,
)
from ambient.runners import registry
from ambient.webhooks.admission import fastpath
from ambient.webhooks.admission.registration import registrations
from tests.unit.charts.render import render

ROOT = Path(__file__).resolve().parents[4]


def _kinds(items: list[dict]) -> list[str]:
    return [i["kind"] for i in items]


def test_the_policies_come_before_the_webhooks_that_rely_on_them() -> None:
    items = registrations(
        b"CA", registry.load(), url="https://x/validate", mutating_policy=True,
        operator_usernames=["system:serviceaccount:a:op"],
    )  # fmt: skip
    assert _kinds(items) == [
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding",
        "MutatingAdmissionPolicy",
        "MutatingAdmissionPolicyBinding",
        "MutatingWebhookConfiguration",
        "ValidatingWebhookConfiguration",
    ]
    policy, binding = items[0], items[1]
    assert binding["spec"]["policyName"] == policy["metadata"]["name"]
    # No NamespacePolicy: refused, never let through.
    assert binding["spec"]["paramRef"]["parameterNotFoundAction"] == "Deny"
    assert policy["spec"]["failurePolicy"] == "Fail"
    assert items[2]["spec"]["failurePolicy"] == "Fail"
    hook = items[-1]["webhooks"][0]
    assert hook["failurePolicy"] == "Fail"
    assert any("system:serviceaccount:a:op" in c["expression"] for c in hook["matchConditions"])
    assert items[-2]["webhooks"][0]["clientConfig"]["url"] == "https://x/mutate"
    # The creator's policy stamps creates: the stamping webhook is weighed for updates only.
    assert items[-2]["webhooks"][0]["rules"][0]["operations"] == ["UPDATE"]


def test_without_the_fast_path_every_write_reaches_both_webhooks() -> None:
    items = registrations(b"CA", registry.load(), url="https://x/validate", fast_path=False)
    assert _kinds(items) == ["MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"]
    assert all("matchConditions" not in i["webhooks"][0] for i in items)
    assert items[0]["webhooks"][0]["rules"][0]["operations"] == ["CREATE", "UPDATE"]


def test_the_policy_and_the_webhook_govern_the_same_namespaces() -> None:
    items = registrations(
        b"CA", registry.load(), url="https://x/validate", match_labels={"team": "a"},
        product_namespace="prod", mutating_policy=True,
    )  # fmt: skip
    selectors = [i["spec"]["matchConstraints"]["namespaceSelector"] for i in items[::2][:2]]
    selectors += [i["webhooks"][0]["namespaceSelector"] for i in items[-2:]]
    assert all(s == selectors[0] for s in selectors), selectors
    assert selectors[0]["matchLabels"] == {"team": "a"}


def test_signed_marks_and_forged_creators_always_go_to_the_webhook() -> None:
    for key in (ANNOTATION_APPROVED_BY, ANNOTATION_CANCELLED_BY, ANNOTATION_REPLAYED_BY):
        assert key in fastpath.CREATE_DECIDED


def test_the_registry_is_in_the_policy_as_the_webhook_reads_it() -> None:
    reg = registry.load()
    variables = {
        v["name"]: v["expression"]
        for v in fastpath.session_policy("x", reg)[0]["spec"]["variables"]
    }
    assert json.loads(variables["registryDefaults"]) == {
        name: e.default_version for name, e in reg.frameworks.items()
    }
    assert json.loads(variables["registryVersions"]) == {
        name: sorted(e.versions) for name, e in reg.frameworks.items()
    }


def test_the_charts_copy_is_the_generated_one() -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "hack" / "chart_fastpath.py"), "--check"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr


def test_the_rules_name_the_registry_and_the_chart_renders_the_same_policy() -> None:
    """The rules carry the registry as literals (a policy's matchConditions cannot read
    its variables); the chart fills its copy from its own registry values, to the same
    policy registration builds."""
    spec = fastpath.session_policy("x", registry.load())[0]["spec"]
    for expression in (
        spec["matchConditions"][0]["expression"],
        spec["validations"][0]["expression"],
    ):
        assert "__REGISTRY" not in expression and '"script/1.0":true' in expression
    docs = render("admission.fastPath.enabled=true")
    (rendered,) = [d["spec"] for d in docs if d["kind"] == "ValidatingAdmissionPolicy"]
    for part in ("matchConditions", "validations", "variables"):
        assert rendered[part] == spec[part], part
