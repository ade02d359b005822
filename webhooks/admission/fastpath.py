"""The admission fast path (pure): what the API server decides itself, in CEL, so that it
calls the admission webhook only when a decision needs it (issue 19, deliverable 5).

Three parts, registered beside the webhooks (``registration.py``; the chart renders the
same text):

- ``session_policy``: a ValidatingAdmissionPolicy whose parameter is the namespace's
  NamespacePolicy. On every Session create it applies the ``common.policy`` rules CEL can
  decide exactly (framework in the registry, models, budget, tools, approval), once, as
  its matchCondition, and refuses what breaks one with the webhook's own words. A
  namespace without a NamespacePolicy is refused (parameterNotFoundAction Deny), as the
  webhook refuses it without a default policy.
- ``validate_conditions``: the validating webhook's matchCondition. The webhook is
  skipped only for writes whose verdict is already known: a Session create that the
  policy above decides entirely (nothing in it the policy leaves to the webhook), an
  update that changes neither spec nor the signed annotations, an operator status write
  that leaves history and usage as they were. Everything else still reaches the webhook,
  which enforces every rule when called.
- ``stamp_conditions`` and ``creator_policy``: the mutating webhook is called only when it
  has something to stamp, and a MutatingAdmissionPolicy (where the cluster serves it)
  stamps the creator on create inside the API server first, so creates skip it. Only a
  Session that waits for approval has a creator stamped (``stamp.py``): other creates are
  not mutated.

Every condition errs towards calling the webhook: a condition that cannot tell sends the
write there, and an error in any of them refuses the write (failurePolicy Fail).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

from ambient.crds.models import GROUP, MAX_FRAMEWORK_CONFIG_BYTES, VERSION
from ambient.crds.naming import (
    ANNOTATION_APPROVED_BY,
    ANNOTATION_CANCELLED_BY,
    ANNOTATION_CREATED_BY_USER,
    ANNOTATION_REPLAYED_BY,
)
from ambient.runners.registry import Registry

MESSAGE_PREFIX = "ambient.ai admission: "
"""What the webhook's refusals start with (``app.response``); the policy's too."""
PLAIN_VERSION = "^[A-Za-z0-9._+-]+$"
"""Framework versions the policy quotes as Python does ('1.0'); others go to the webhook."""
# JSON bytes a scalar can take at most (json.dumps, ensure_ascii): a float's repr is at
# most 24 characters, an int64 20.
_NUMBER_BYTES = 32
_TOO_BIG = MAX_FRAMEWORK_CONFIG_BYTES + 1


def _q(text: str) -> str:
    """A CEL string literal (JSON's escapes are CEL's)."""
    return json.dumps(text)


def _cents(expr: str) -> str:
    """A Money string as integer cents, in one conversion: a Money string has at most 12
    integer digits and two decimals (schema-checked), so the double's error times 100
    stays far below the 0.5 the rounding allows."""
    return f"int(double({expr}) * 100.0 + 0.5)"


def _money(cents: str) -> str:
    """Integer cents shown as Python shows Decimal(...).quantize(0.01): 1234.50."""
    return (
        f"(string({cents} / 100) + '.' + ({cents} % 100 < 10 ? '0' : '') + string({cents} % 100))"
    )


def _listing(expr: str) -> str:
    """common.policy._listing: the names joined, or 'none'."""
    return f"(size({expr}) == 0 ? 'none' : {expr}.join(', '))"


def _scalar_bytes(x: str) -> str:
    """An upper bound of a JSON scalar's size; a list or map here counts as too big. A
    string takes at most 12 bytes per character (``size`` counts code points: one outside
    the BMP is escaped as two \\uXXXX), so no conversion to bytes is needed; any other
    scalar (a number, a bool, null) takes at most 32."""
    return (
        f"(type({x}) == string ? 12 * size({x}) + 2 : "
        f"type({x}) == list || type({x}) == map ? {_TOO_BIG} : {_NUMBER_BYTES})"
    )


def _value_bytes(v: str) -> str:
    """An upper bound of a config value's JSON size: scalars, and lists or maps of
    scalars; anything deeper counts as too big (the webhook measures it). Each value is
    read once (two-variable comprehensions, CEL in kube-apiserver 1.32 and later), and a
    string (the common value) is told apart first."""
    return (
        f"(type({v}) == string ? 12 * size({v}) + 2 : "
        f"type({v}) == list ? 2 + {v}.map(e, {_scalar_bytes('e')} + 1).sum() : "
        f"type({v}) == map ? 2 + {v}.transformList(k2, v2, 12 * size(k2) + 4 + "
        f"{_scalar_bytes('v2')}).sum() : {_NUMBER_BYTES})"
    )


CONFIG = "object.spec.framework.config"
CONFIG_SMALL = (
    f"(!has({CONFIG}) || 2 + {CONFIG}.transformList(k, v, 12 * size(k) + 4 + "
    f"{_value_bytes('v')}).sum() <= {MAX_FRAMEWORK_CONFIG_BYTES})"
)
"""True when spec.framework.config is surely within MAX_FRAMEWORK_CONFIG_BYTES as compact
JSON; when it cannot tell, the webhook measures it."""

ANNOTATIONS = "object.metadata.?annotations.orValue({})"
OLD_ANNOTATIONS = "oldObject.metadata.?annotations.orValue({})"
USER = "request.userInfo.username"
MAIN = "request.?subResource.orValue('') == ''"
"""A write of the object itself, not of a subresource (absent from the request then)."""
MONTH_NOW = "string(object.metadata.creationTimestamp).substring(0, 7)"
"""The create's month (the API server sets creationTimestamp before admission): the one a
NamespacePolicy's recorded spend must be of to count."""
APPROVAL_REQUIRED = "object.spec.?policy.?approvalRequired.orValue(false) == true"
"""The Session waits for an approval: the only kind whose creator is stamped (stamp.py)."""
SIGNED = (ANNOTATION_APPROVED_BY, ANNOTATION_CANCELLED_BY, ANNOTATION_REPLAYED_BY)


def _ann(source: str, key: str) -> str:
    """The annotation's value, '' when absent."""
    return f"({source}[?{_q(key)}].orValue(''))"


ANNOTATIONS_GIVEN = "object.metadata.annotations"
"""The annotations, read where a presence test (``has``) has shown there are some."""

CREATE_DECIDED = " && ".join(
    [
        # Most creates carry no annotations: one presence test, then plain key lookups.
        f"(!has({ANNOTATIONS_GIVEN}) || ("
        # Signed marks need the approver list and who sets them: the webhook's.
        + " && ".join(f"!({_q(k)} in {ANNOTATIONS_GIVEN})" for k in SIGNED)
        # A creator other than the requester is a forgery the webhook names.
        + f" && (!({_q(ANNOTATION_CREATED_BY_USER)} in {ANNOTATIONS_GIVEN}) || "
        f"{ANNOTATIONS_GIVEN}[{_q(ANNOTATION_CREATED_BY_USER)}] == {USER})))",
        # (The regular expression only for a version given: most Sessions name none.)
        "(!has(object.spec.framework.version) || "
        f"object.spec.framework.version.matches({_q(PLAIN_VERSION)}))",
        # Storage locations have the webhook's prefix and claim rules.
        "(!has(object.spec.artifacts) || "
        "object.spec.artifacts.?storage.?type.orValue('s3') == 'external' || "
        "object.spec.artifacts.?storage.?location.orValue('') == '')",
        CONFIG_SMALL,
    ]
)
"""A Session create the ValidatingAdmissionPolicy decides entirely."""


def validate_conditions(
    operator_usernames: Iterable[str] = (), operator_groups: Iterable[str] = ()
) -> list[dict[str, str]]:
    """The validating webhook's matchCondition: it is called unless the write is one the
    policies vouch for. One expression, not one condition per kind of write: the API
    server evaluates every condition of a webhook (each a program with its own cost
    tracker) before it looks at any result, where one expression stops at the first
    kind of write that matches."""
    users = json.dumps(sorted(operator_usernames))
    groups = json.dumps(sorted(operator_groups))
    operator = (
        f"({USER} in {users} || request.userInfo.?groups.orValue([]).exists(g, g in {groups}))"
    )
    spec_unchanged = " && ".join(
        [
            "object.spec == oldObject.spec",
            *(
                f"{_ann(ANNOTATIONS, k)} == {_ann(OLD_ANNOTATIONS, k)} && "
                f"(({_q(k)} in {ANNOTATIONS}) == ({_q(k)} in {OLD_ANNOTATIONS}))"
                for k in (*SIGNED, ANNOTATION_CREATED_BY_USER)
            ),
        ]
    )
    status_unchanged = " && ".join(
        f"object.?status.?{f}.orValue({empty}) == oldObject.?status.?{f}.orValue({empty})"
        for f, empty in (("history", "[]"), ("historyArchives", "[]"), ("usage", "{}"))
    )
    vouched_for = [
        # A create the policy decides entirely.
        f"(request.operation == 'CREATE' && {MAIN} && {CREATE_DECIDED})",
        # An update that changes nothing the webhook checks.
        f"(request.operation == 'UPDATE' && {MAIN} && {spec_unchanged})",
        # An operator status write that keeps history and usage as they were.
        "(request.operation == 'UPDATE' && request.?subResource.orValue('') == 'status' && "
        f"{operator} && {status_unchanged})",
    ]
    return [
        {
            "name": "not-a-write-the-policies-vouch-for",
            "expression": "!(request.resource.resource == 'sessions' && ("
            + " || ".join(vouched_for)
            + "))",
        }
    ]


def stamp_conditions() -> list[dict[str, str]]:
    """The mutating webhook's matchCondition: called only when ``stamp.stamps`` would
    return something (the creator to set or keep, a canceller to name)."""
    creator, old_creator = (
        _ann(ANNOTATIONS, ANNOTATION_CREATED_BY_USER),
        _ann(OLD_ANNOTATIONS, ANNOTATION_CREATED_BY_USER),
    )
    cancelling = (
        "object.spec.?cancel.orValue(false) == true && "
        "oldObject.spec.?cancel.orValue(false) != true"
    )
    expression = (
        "request.?subResource.orValue('') == '' && ("
        f"(request.operation == 'CREATE' && {APPROVAL_REQUIRED} && {USER} != '' && "
        f"{creator} != {USER}) || "
        f"(request.operation == 'UPDATE' && ("
        f"({_q(ANNOTATION_CREATED_BY_USER)} in {OLD_ANNOTATIONS} && "
        f"(!({_q(ANNOTATION_CREATED_BY_USER)} in {ANNOTATIONS}) || {creator} != {old_creator})) "
        f"|| ({cancelling} && {USER} != '' && "
        f"{_ann(ANNOTATIONS, ANNOTATION_CANCELLED_BY)} == ''))))"
    )
    return [{"name": "something-to-stamp", "expression": expression}]


REGISTRY_PAIRS = "__REGISTRY_PAIRS__"
"""Stands for the runner registry in the rules, as a CEL map literal whose keys are the
framework/version pairs a Session may name: "type/version" for each version, and
"type/latest" and "type/" where the default version exists (a policy's matchConditions
cannot read its variables, and one lookup is the cheapest test). A framework type is a
DNS label, so the first '/' splits a key unambiguously. ``_registry`` fills it in; the
chart's templates fill their copy from the chart's registry values."""


def _registry_pairs(registry: Registry) -> str:
    pairs: dict[str, bool] = {}
    for name, entry in registry.frameworks.items():
        for version in entry.versions:
            # Never reached: the webhook reads these as the default.
            if version not in ("", "latest"):
                pairs[f"{name}/{version}"] = True
        if entry.default_version in entry.versions:
            pairs[f"{name}/latest"] = pairs[f"{name}/"] = True
    return json.dumps(pairs, separators=(",", ":"), sort_keys=True)


def _registry(expression: str, registry: Registry) -> str:
    return expression.replace(REGISTRY_PAIRS, _registry_pairs(registry))


def _registry_variables(registry: Registry) -> list[dict[str, str]]:
    """What the refusal's words read (``REASONS``): the defaults, the versions, the names."""
    frameworks = sorted(registry.frameworks.items())
    defaults = {name: e.default_version for name, e in frameworks}
    versions = {name: sorted(e.versions) for name, e in frameworks}
    return [
        {"name": "registryDefaults", "expression": json.dumps(defaults, separators=(",", ":"))},
        {"name": "registryVersions", "expression": json.dumps(versions, separators=(",", ":"))},
        {"name": "registryKnown", "expression": _q(", ".join(sorted(registry.frameworks)))},
    ]


def _reason_parts() -> list[dict[str, str]]:
    """Each rule's reasons, in the order ``common.policy.evaluate`` reports them, with its
    exact words, as named parts that read each other (``variables.<name>``, inlined by
    ``_inline``) and the registry's variables."""
    ns = "request.namespace"
    budget = "params.spec.models.budget"
    currency = f"{budget}.?currency.orValue('USD')"
    spent = "params.status.?monthToDateSpend.orValue('0')"
    return [
        {"name": "fwType", "expression": "object.spec.framework.type"},
        {
            "name": "fwVersion",
            "expression": "object.spec.framework.?version.orValue('latest')",
        },
        {
            "name": "fwChosen",
            "expression": "variables.fwVersion in ['', 'latest'] && "
            "variables.fwType in variables.registryDefaults ? "
            "variables.registryDefaults[variables.fwType] : variables.fwVersion",
        },
        {
            "name": "frameworkReasons",
            # Versions that are not plain are the webhook's (Python's quoting).
            "expression": f"!variables.fwVersion.matches({_q(PLAIN_VERSION)}) ? [] : "
            "!(variables.fwType in variables.registryVersions) ? "
            "['framework type \\'' + variables.fwType + '\\' is not in the runner registry "
            "(known: ' + variables.registryKnown + ')'] : "
            "!(variables.fwChosen in variables.registryVersions[variables.fwType]) ? "
            "['framework \\'' + variables.fwType + '\\' has no version \\'' + "
            "variables.fwChosen + '\\' in the runner registry (known: ' + "
            "variables.registryVersions[variables.fwType].join(', ') + ')'] : []",
        },
        {
            "name": "policyModels",
            "expression": "params.spec.?models.?allowed.orValue([])",
        },
        {
            "name": "modelReasons",
            "expression": "object.spec.?policy.?modelConstraints.?allowed.orValue([])"
            ".filter(m, !(m in variables.policyModels)).map(m, 'model ' + m + "
            f"' is not allowed in namespace ' + {ns} + ' (allowed: ' + "
            f"{_listing('variables.policyModels')} + ')')",
        },
        {
            "name": "asked",
            "expression": "object.spec.?policy.?modelConstraints.?budget.orValue('')",
        },
        {
            "name": "monthlyCents",
            "expression": f"has(params.spec.models) && has({budget}) ? "
            f"{_cents(f'{budget}.monthly')} : -1",
        },
        {
            "name": "spentCents",
            # The spend recorded for this month; the create's own timestamp (the API
            # server sets it before validation) says which month it is.
            "expression": f"params.?status.?month.orValue('') == {MONTH_NOW} ? {_cents(spent)} : 0",
        },
        {
            "name": "leftCents",
            "expression": "variables.monthlyCents - variables.spentCents > 0 ? "
            "variables.monthlyCents - variables.spentCents : 0",
        },
        {
            "name": "budgetReasons",
            "expression": "variables.monthlyCents < 0 ? [] : variables.asked == '' ? "
            f"['namespace ' + {ns} + ' has a monthly budget of ' + "
            f"{_money('variables.monthlyCents')} + ' ' + {currency} + "
            "': set spec.policy.modelConstraints.budget to bound this Session'] : "
            f"{_cents('variables.asked')} > variables.leftCents ? "
            f"['budget ' + {_money(_cents('variables.asked'))} + ' ' + {currency} + "
            f"' exceeds the ' + {_money('variables.leftCents')} + ' ' + {currency} + "
            f"' left this month in namespace ' + {ns} + ' (monthly ' + "
            f"{_money('variables.monthlyCents')} + ' ' + {currency} + ', spent ' + "
            f"{_money('variables.spentCents')} + ' ' + {currency} + ')'] : []",
        },
        {
            "name": "toolsAllowed",
            "expression": "params.spec.?tools.?allowed.orValue([])",
        },
        {
            "name": "toolKeysAllowed",
            "expression": "variables.toolsAllowed.map(t, t.lowerAscii())",
        },
        {
            "name": "toolKeysBlocked",
            "expression": "params.spec.?tools.?blocked.orValue([]).map(t, t.lowerAscii())",
        },
        {
            "name": "toolReasons",
            # Tool names are ASCII (the schema's Name pattern): lowerAscii is casefold.
            "expression": "object.spec.?policy.?toolConstraints.?allowed.orValue([])"
            ".map(t, t.lowerAscii() in variables.toolKeysBlocked ? "
            f"'tool ' + t + ' is blocked in namespace ' + {ns} : "
            "!(t.lowerAscii() in variables.toolKeysAllowed) ? "
            f"'tool ' + t + ' is not allowed in namespace ' + {ns} + ' (allowed: ' + "
            f"{_listing('variables.toolsAllowed')} + ')' : '').filter(r, r != '')",
        },
        {
            "name": "approvalReasons",
            "expression": "(params.spec.?approval.?required.orValue(false) && "
            f"!({APPROVAL_REQUIRED}) ? "
            f"['namespace ' + {ns} + ' requires approval for every Session: "
            "set spec.policy.approvalRequired: true'] : []) + "
            f"({_ann(ANNOTATIONS, ANNOTATION_CREATED_BY_USER)} != '' && "
            f"{_ann(ANNOTATIONS, ANNOTATION_APPROVED_BY)} == "
            f"{_ann(ANNOTATIONS, ANNOTATION_CREATED_BY_USER)} ? "
            f"[{_ann(ANNOTATIONS, ANNOTATION_CREATED_BY_USER)} + "
            "' created this Session and may not approve it: another approver must'] : [])",
        },
        {
            "name": "reasons",
            "expression": "variables.frameworkReasons + variables.modelReasons + "
            "variables.budgetReasons + variables.toolReasons + variables.approvalReasons",
        },
    ]


def _inline(expression: str, parts: Mapping[str, str]) -> str:
    """``expression`` with each ``variables.<name>`` of ``parts`` replaced by that part's
    own expression (recursively, in parentheses); the registry's variables stay."""
    return re.sub(
        r"variables\.(\w+)",
        lambda m: f"({_inline(parts[m[1]], parts)})" if m[1] in parts else m[0],
        expression,
    )


REASONS = _inline(
    "variables.reasons", {part["name"]: part["expression"] for part in _reason_parts()}
)
"""Why the policy refuses a create: a list of the webhook's sentences (empty: admitted).
One expression, not variables: kube-apiserver builds every declared variable's accessor
for each of the three activations of each evaluation, read or not."""


_HALF_CENT = "0.005"
"""The slack in the rules' budget test, done in doubles: Money has at most 12 integer
digits and two decimals (schema-checked, the spend too): below 2^40 doubles are at most
2^-13 apart, so the three conversions, the subtraction and the addition err by at most
2^-14 each, together by less than 0.0004: far below half a cent, while amounts that
differ at all differ by a whole cent. So "within half a cent" is exactly "at most" for
these amounts, as the webhook's Decimals decide."""


def _allowed() -> str:
    """The policy's rules as plain checks, in one expression: all an admitted create costs
    (the policy's matchCondition). Inline rather than through ``variables``: in
    kube-apiserver (1.35) each variable read is a program of its own with its own cost
    tracker, and the variables are built anew for each activation. Each field path read
    allocates a wrapper per step, so a path is read as few times as the common case
    allows (presence tests first). The words of a refusal (``REASONS``) are built only
    for a create that breaks a rule."""
    fw_version = "object.spec.framework.?version.orValue('latest')"
    asked = "object.spec.?policy.?modelConstraints.?budget.orValue('')"
    budget = "params.spec.models.budget"
    spent = (
        f"(params.?status.?month.orValue('') == {MONTH_NOW} ? "
        "double(params.status.?monthToDateSpend.orValue('0')) : 0.0)"
    )
    tools = "object.spec.?policy.?toolConstraints.?allowed.orValue([])"
    tools_allowed = "params.spec.?tools.?allowed.orValue([])"
    creator = _q(ANNOTATION_CREATED_BY_USER)
    given = ANNOTATIONS_GIVEN
    return " && ".join(
        [
            # A version that is not plain is the webhook's (Python's quoting); the regular
            # expression runs only for one the registry does not know.
            f"(object.spec.framework.type + '/' + {fw_version} in {REGISTRY_PAIRS} || "
            f"!{fw_version}.matches({_q(PLAIN_VERSION)}))",
            "object.spec.?policy.?modelConstraints.?allowed.orValue([])"
            ".all(m, m in params.spec.?models.?allowed.orValue([]))",
            # What is left this month is never below 0: a budget of 0 always fits.
            f"(!has(params.spec.models) || !has({budget}) || ({asked} != '' && "
            f"(double({asked}) < {_HALF_CENT} || "
            f"double({asked}) <= double({budget}.monthly) - {spent} + {_HALF_CENT})))",
            # Tool names are ASCII (the schema's Name pattern): lowerAscii is casefold.
            "(!has(params.spec.tools) || !has(params.spec.tools.blocked) || "
            f"!{tools}.exists(t, params.spec.tools.blocked.exists(b, "
            "b.lowerAscii() == t.lowerAscii())))",
            # Spelled as the policy spells them (one call), else compared casefolded.
            f"(sets.contains({tools_allowed}, {tools}) || {tools}.all(t, "
            f"{tools_allowed}.exists(a, a.lowerAscii() == t.lowerAscii())))",
            f"!(params.spec.?approval.?required.orValue(false) && !({APPROVAL_REQUIRED}))",
            f"(!has({given}) || !({given}[?{creator}].orValue('') != '' && "
            f"{given}[?{_q(ANNOTATION_APPROVED_BY)}].orValue('') == {given}[{creator}]))",
        ]
    )


ALLOWED = _allowed()
"""A Session create the policy admits (``common.policy.evaluate`` finds nothing)."""

POLICY_MATCH_CONDITIONS = [{"name": "breaks-a-rule", "expression": f"!({ALLOWED})"}]
"""The policy is evaluated only for a create that breaks a rule. An admitted create then
costs the API server one activation and one evaluation of the rules, where a policy
evaluated for it costs three activations (validations, messageExpressions, audit
annotations: kube-apiserver builds each, used or not) and the rules twice (the
messageExpression is evaluated whether or not the validation fails)."""

VALIDATIONS = [
    {
        # The same rules decide (the condition above only skips what they admit).
        "expression": ALLOWED,
        "messageExpression": f"{_q(MESSAGE_PREFIX)} + ({REASONS}).join('; ')",
        "reason": "Forbidden",
    }
]


def _selector(product_namespace: str, match_labels: Mapping[str, str] | None) -> dict[str, Any]:
    selector: dict[str, Any] = {
        "matchExpressions": [
            {
                "key": "kubernetes.io/metadata.name",
                "operator": "NotIn",
                "values": sorted({"kube-system", product_namespace}),
            }
        ]
    }
    if match_labels:
        selector["matchLabels"] = dict(match_labels)
    return selector


def _session_creates(
    product_namespace: str, match_labels: Mapping[str, str] | None
) -> dict[str, Any]:
    """What both policies match: Session creates in the namespaces the webhook governs."""
    return {
        "namespaceSelector": _selector(product_namespace, match_labels),
        "resourceRules": [
            {
                "apiGroups": [GROUP],
                "apiVersions": [VERSION],
                "operations": ["CREATE"],
                "resources": ["sessions"],
                "scope": "Namespaced",
            }
        ],
    }


def session_policy(
    name: str,
    registry: Registry,
    *,
    product_namespace: str = "ambient-system",
    match_labels: Mapping[str, str] | None = None,
) -> list[dict[str, Any]]:
    """The ValidatingAdmissionPolicy and its binding, for the namespaces the webhook
    governs (the same selector)."""
    policy = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": name},
        "spec": {
            "failurePolicy": "Fail",
            "paramKind": {"apiVersion": f"{GROUP}/{VERSION}", "kind": "NamespacePolicy"},
            "matchConstraints": _session_creates(product_namespace, match_labels),
            "variables": _registry_variables(registry),
            "matchConditions": [
                {**c, "expression": _registry(c["expression"], registry)}
                for c in POLICY_MATCH_CONDITIONS
            ],
            "validations": [
                {**v, "expression": _registry(v["expression"], registry)} for v in VALIDATIONS
            ],
        },
    }
    binding = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicyBinding",
        # The API server's refusal where no NamespacePolicy exists names the binding.
        "metadata": {"name": f"{name}-needs-a-namespacepolicy"},
        "spec": {
            "policyName": name,
            "validationActions": ["Deny"],
            # The Session's own namespace's NamespacePolicy (every one, should there be
            # two: each must allow). None: refused, as the webhook refuses it.
            "paramRef": {"selector": {}, "parameterNotFoundAction": "Deny"},
        },
    }
    return [policy, binding]


MUTATING_POLICY_API = "admissionregistration.k8s.io/v1beta1"
"""Where kube-apiserver 1.34 and 1.35 serve MutatingAdmissionPolicy (beta, off unless the
MutatingAdmissionPolicy feature gate and this API version are enabled)."""


CREATOR_MUTATION: dict[str, Any] = {
    "matchConditions": [
        {
            # Only where four eyes apply (stamp.py): other creates are not mutated at all.
            "name": "creator-to-stamp",
            "expression": f"{APPROVAL_REQUIRED} && {USER} != '' && "
            f"{_ann(ANNOTATIONS, ANNOTATION_CREATED_BY_USER)} != {USER}",
        }
    ],
    "mutations": [
        {
            "patchType": "ApplyConfiguration",
            "applyConfiguration": {
                "expression": "Object{metadata: Object.metadata{annotations: "
                f"{{{_q(ANNOTATION_CREATED_BY_USER)}: {USER}}}}}}}"
            },
        }
    ],
}
"""The MutatingAdmissionPolicy's condition and mutation."""

OPERATOR_PLACEHOLDER = "__OPERATOR__"
"""Stands for the operator's username in the chart's copy (files/admission-fastpath.json)."""


def chart_file() -> dict[str, Any]:
    """What the chart renders its fast path from: the same text, with the operator's
    username and the runner registry filled in by the templates."""
    return {
        "validateConditions": validate_conditions([OPERATOR_PLACEHOLDER]),
        "stampConditions": stamp_conditions(),
        "policyMatchConditions": POLICY_MATCH_CONDITIONS,
        "validations": VALIDATIONS,
        "creatorPolicy": CREATOR_MUTATION,
    }


def creator_policy(
    name: str,
    *,
    product_namespace: str = "ambient-system",
    match_labels: Mapping[str, str] | None = None,
) -> list[dict[str, Any]]:
    """A MutatingAdmissionPolicy and binding stamping ambient.ai/created-by-user on create
    from the API server's userInfo, as ``stamp.stamps`` does; the mutating webhook then
    finds nothing to stamp and is not called."""
    policy = {
        "apiVersion": MUTATING_POLICY_API,
        "kind": "MutatingAdmissionPolicy",
        "metadata": {"name": name},
        "spec": {
            "failurePolicy": "Fail",
            "reinvocationPolicy": "Never",
            "matchConstraints": _session_creates(product_namespace, match_labels),
            **CREATOR_MUTATION,
        },
    }
    binding = {
        "apiVersion": MUTATING_POLICY_API,
        "kind": "MutatingAdmissionPolicyBinding",
        "metadata": {"name": name},
        "spec": {"policyName": name},
    }
    return [policy, binding]
