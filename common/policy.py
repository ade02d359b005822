"""Whether a Session complies with its namespace's NamespacePolicy: one pure function.

``evaluate`` is what the admission webhook (and, for running Sessions, the operator) asks.
It performs no I/O: the policy, the month-to-date usage, the runner registry and the time
are all passed in, so every rule is tested exhaustively without a cluster. It collects
every violation rather than stopping at the first, so a person fixes a Session in one go,
and every message names the field, the namespace and what would be accepted.

Rules, in the order their violations are reported:

1. framework: ``spec.framework`` type and version resolve in the runner registry.
2. models: every model in ``spec.policy.modelConstraints.allowed`` is allowed by the
   policy (exact names). A Session that lists no models asks for none, which is fine.
3. budget: see ``_budget``; amounts are Decimal, in the policy's currency.
4. tools: every tool is in the policy's allowed list and none is blocked; blocked wins.
   Tool names compare case-insensitively (the seed writes ``bash``, Claude Code ``Bash``,
   and a block must not be dodged by spelling ``Exec``). An empty allowed list allows none.
5. approval: when the policy requires approval, every Session must say
   ``approvalRequired: true``; none can opt out.
6. storage: see ``StoragePolicy``.

A namespace without a NamespacePolicy refuses every Session (default deny) unless the
operator's configuration names a default policy.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal, Inexact, localcontext
from enum import StrEnum

from ambient.crds.models import NamespacePolicy, Session, StorageType, money
from ambient.crds.naming import (
    ANNOTATION_APPROVED_BY,
    ANNOTATION_CREATED_BY_USER,
    ARTIFACTS_CLAIM,
)
from ambient.runners.registry import Registry, UnknownFrameworkError, check

MONTH_PATTERN = re.compile(r"[0-9]{4}-(0[1-9]|1[0-2])")
CENT = Decimal("0.01")


class Code(StrEnum):
    """Stable, CamelCase violation codes; clients and alerts match on these, not messages."""

    NO_POLICY = "NoPolicy"
    UNKNOWN_FRAMEWORK = "UnknownFramework"
    MODEL_NOT_ALLOWED = "ModelNotAllowed"
    BUDGET_REQUIRED = "BudgetRequired"
    BUDGET_EXCEEDED = "BudgetExceeded"
    TOOL_BLOCKED = "ToolBlocked"
    TOOL_NOT_ALLOWED = "ToolNotAllowed"
    APPROVAL_REQUIRED = "ApprovalRequired"
    STORAGE_TYPE_NOT_ALLOWED = "StorageTypeNotAllowed"
    STORAGE_OUTSIDE_PREFIX = "StorageOutsidePrefix"
    SELF_APPROVED = "SelfApproved"


@dataclass(frozen=True)
class UserInfo:
    """Who asks, as the API server authenticated them (AdmissionReview userInfo)."""

    username: str
    groups: tuple[str, ...] = ()
    uid: str = ""


@dataclass(frozen=True)
class Usage:
    """The namespace's spend in one calendar month (UTC), as the operator rolls it up."""

    month: str
    """The month the figure is for, ``YYYY-MM``."""
    month_to_date_spend: Decimal = Decimal(0)
    """Spend so far that month, in the policy's currency; may carry fractions of a cent."""

    def __post_init__(self) -> None:
        if not MONTH_PATTERN.fullmatch(self.month):
            raise ValueError(f"usage month {self.month!r} is not a month like '2026-11'")
        spend = self.month_to_date_spend
        if not isinstance(spend, Decimal) or not spend.is_finite() or spend < 0:
            raise ValueError(f"month-to-date spend {spend!r} is not a non-negative Decimal")

    @classmethod
    def of(cls, policy: NamespacePolicy) -> Usage | None:
        """The usage the operator recorded in the policy's status; None when there is none."""
        status = policy.status
        if status.month is None:
            return None
        return cls(status.month, money(status.month_to_date_spend))


@dataclass(frozen=True)
class StoragePolicy:
    """Where a namespace's artifacts may go.

    The NamespacePolicy has no storage section yet, so the default is a convention: every
    storage type (s3, pvc, external) is allowed; an s3 location is ``<bucket>/<key>`` (an
    ``s3://`` scheme is optional) whose key starts with ``<namespace>/`` (or is exactly
    ``<namespace>``) and has no ``..`` segment; a pvc location is a claim in the Session's
    own namespace named ``ambient-artifacts`` or ``ambient-artifacts-<suffix>`` (so agent
    code never mounts the namespace's other volumes); an external location is a reference
    only, so it is not constrained. An s3 Session without a location lets the operator
    choose one, inside the prefix. A later ``spec.storage`` in the NamespacePolicy maps
    onto these fields.
    """

    allowed_types: frozenset[StorageType] = frozenset(StorageType)
    """Storage types Sessions may use."""
    bucket: str | None = None
    """When set, the only s3 bucket Sessions may use."""
    prefix_template: str = "{namespace}/"
    """Key prefix every s3 location must start with; ``{namespace}`` is substituted."""

    def __post_init__(self) -> None:
        try:
            prefix = self.prefix_template.format(namespace="ns")
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(
                f"storage prefix template {self.prefix_template!r} may only use {{namespace}}"
            ) from exc
        if not prefix.endswith("/") or prefix.startswith("/") or ".." in prefix.split("/"):
            # Without the trailing slash, team-alpha's prefix would also admit team-alpha-x.
            raise ValueError(
                f"storage prefix template {self.prefix_template!r} must be a relative key "
                "prefix ending in '/'"
            )

    def prefix(self, namespace: str) -> str:
        """The key prefix for one namespace."""
        return self.prefix_template.format(namespace=namespace)


@dataclass(frozen=True)
class Violation:
    """One reason a Session is refused."""

    code: Code
    """Stable CamelCase code, e.g. ModelNotAllowed."""
    field: str
    """JSON path of the offending field, e.g. spec.policy.modelConstraints.allowed[1]."""
    message: str
    """What is wrong and what would be accepted, for the person who wrote the Session."""


@dataclass(frozen=True)
class Decision:
    """The verdict with every reason."""

    allowed: bool
    violations: tuple[Violation, ...] = ()
    policy_name: str | None = None
    """The NamespacePolicy (or configured default) the Session was checked against."""

    def __post_init__(self) -> None:
        if self.allowed == bool(self.violations):
            raise ValueError("a Decision is allowed exactly when it has no violations")

    @property
    def reason(self) -> str:
        """All messages, for an admission response or a status message."""
        return "; ".join(v.message for v in self.violations)

    @property
    def codes(self) -> tuple[Code, ...]:
        """The violation codes, in order."""
        return tuple(v.code for v in self.violations)


@dataclass
class _Collector:
    namespace: str
    found: list[Violation] = field(default_factory=list)

    def add(self, code: Code, path: str, message: str) -> None:
        self.found.append(Violation(code, path, message))


def evaluate(
    policy: NamespacePolicy | None,
    session: Session,
    user: UserInfo,
    usage: Usage | None,
    registry: Registry,
    *,
    now: datetime,
    default_policy: NamespacePolicy | None = None,
    storage: StoragePolicy | None = None,
) -> Decision:
    """Decide whether ``session`` may run in its namespace, with every reason it may not.

    ``policy`` is the namespace's NamespacePolicy, or None when it has none: then
    ``default_policy`` (from the operator's configuration) applies, and without one the
    Session is refused (NoPolicy). ``usage`` is the namespace's month-to-date spend; when
    None it is read from the chosen policy's status. ``now`` (timezone-aware) picks the
    month: usage for any other month counts as no spend. ``storage`` defaults to the
    convention documented on ``StoragePolicy``. ``user`` is accepted so that rules about
    who asks (approvers, runner identities) live here too; no rule depends on it yet.

    Raises ValueError for a caller's mistake (naive ``now``, a Session without a
    namespace, another namespace's policy). The admission webhook denies on any error:
    policy that cannot be evaluated refuses the Session (fail closed).
    """
    del user  # No rule depends on the requester yet; see the docstring.
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be timezone-aware: the budget month is a UTC month")
    namespace = session.metadata.namespace
    if not namespace:
        raise ValueError("the Session has no metadata.namespace; set it from the request")
    if policy is not None and policy.metadata.namespace not in ("", namespace):
        raise ValueError(
            f"NamespacePolicy {policy.metadata.namespace}/{policy.metadata.name} "
            f"cannot decide for a Session in namespace {namespace}"
        )
    chosen = policy or default_policy
    if chosen is None:
        violation = Violation(
            Code.NO_POLICY,
            "metadata.namespace",
            f"namespace {namespace} has no NamespacePolicy, so no Session may run there: "
            "ask a platform admin to create one",
        )
        return Decision(False, (violation,), None)
    out = _Collector(namespace)
    _framework(session, registry, out)
    _models(chosen, session, out)
    _budget(chosen, session, usage if usage is not None else Usage.of(chosen), now, out)
    _tools(chosen, session, out)
    _approval(chosen, session, out)
    _storage(storage or StoragePolicy(), session, out)
    return Decision(not out.found, tuple(out.found), chosen.metadata.name or None)


def _listing(names: list[str]) -> str:
    return ", ".join(names) if names else "none"


def _framework(session: Session, registry: Registry, out: _Collector) -> None:
    framework = session.spec.framework
    try:
        check(registry, framework.type, framework.version)
    except UnknownFrameworkError as exc:
        known_type = framework.type in registry.frameworks
        path = "spec.framework.version" if known_type else "spec.framework.type"
        out.add(Code.UNKNOWN_FRAMEWORK, path, str(exc))


def _models(policy: NamespacePolicy, session: Session, out: _Collector) -> None:
    allowed = policy.spec.models.allowed
    for i, model in enumerate(session.spec.policy.model_constraints.allowed):
        if model not in allowed:
            out.add(
                Code.MODEL_NOT_ALLOWED,
                f"spec.policy.modelConstraints.allowed[{i}]",
                f"model {model} is not allowed in namespace {out.namespace} "
                f"(allowed: {_listing(allowed)})",
            )


def _exact_difference(a: Decimal, b: Decimal) -> Decimal:
    """a - b without rounding: a rounded difference could let a Session through."""
    exponents = [e for e in (a.as_tuple().exponent, b.as_tuple().exponent) if isinstance(e, int)]
    with localcontext() as ctx:
        ctx.prec = max(a.adjusted(), b.adjusted(), 0) - min(exponents, default=0) + 2
        ctx.traps[Inexact] = True  # cannot happen at that precision; fail loudly if it does
        return a - b


def _cents(value: Decimal, rounding: str) -> Decimal:
    with localcontext() as ctx:
        ctx.prec = max(28, value.adjusted() + 3)
        return value.quantize(CENT, rounding=rounding)


def _budget(
    policy: NamespacePolicy,
    session: Session,
    usage: Usage | None,
    now: datetime,
    out: _Collector,
) -> None:
    """The Session's budget must fit what is left of the namespace's month.

    Left is the policy's monthly budget minus the month-to-date spend (never below zero);
    a budget exactly equal to what is left fits. A namespace without a budget has no
    limit. A namespace with a budget requires every Session to name one
    (BudgetRequired): the runner could not be bounded, and one Session could spend the
    whole month. Sessions carry no currency: their amounts are in the policy's currency.
    """
    budget = policy.spec.models.budget
    if budget is None:
        return
    currency = budget.currency
    path = "spec.policy.modelConstraints.budget"
    monthly = money(budget.monthly)
    asked_text = session.spec.policy.model_constraints.budget
    if asked_text is None:
        out.add(
            Code.BUDGET_REQUIRED,
            path,
            f"namespace {out.namespace} has a monthly budget of {monthly:.2f} {currency}: "
            f"set {path} to bound this Session",
        )
        return
    asked = money(asked_text)
    month = now.astimezone(UTC).strftime("%Y-%m")
    spent = usage.month_to_date_spend if usage is not None and usage.month == month else Decimal(0)
    left = max(_exact_difference(monthly, spent), Decimal(0))
    if asked > left:
        # Shown to the cent: left rounded down and spent up, so the figures agree with
        # the refusal even when the spend carries fractions of a cent.
        shown_left = _cents(left, ROUND_FLOOR)
        shown_spent = _cents(spent, ROUND_CEILING)
        out.add(
            Code.BUDGET_EXCEEDED,
            path,
            f"budget {asked:.2f} {currency} exceeds the {shown_left} {currency} left this "
            f"month in namespace {out.namespace} (monthly {monthly:.2f} {currency}, "
            f"spent {shown_spent} {currency})",
        )


def _tools(policy: NamespacePolicy, session: Session, out: _Collector) -> None:
    allowed = policy.spec.tools.allowed
    allowed_keys = {name.casefold() for name in allowed}
    blocked_keys = {name.casefold() for name in policy.spec.tools.blocked}
    for i, tool in enumerate(session.spec.policy.tool_constraints.allowed):
        path = f"spec.policy.toolConstraints.allowed[{i}]"
        if tool.casefold() in blocked_keys:  # blocked wins, even when also allowed
            out.add(Code.TOOL_BLOCKED, path, f"tool {tool} is blocked in namespace {out.namespace}")
        elif tool.casefold() not in allowed_keys:
            out.add(
                Code.TOOL_NOT_ALLOWED,
                path,
                f"tool {tool} is not allowed in namespace {out.namespace} "
                f"(allowed: {_listing(allowed)})",
            )


def _approval(policy: NamespacePolicy, session: Session, out: _Collector) -> None:
    if policy.spec.approval.required and not session.spec.policy.approval_required:
        out.add(
            Code.APPROVAL_REQUIRED,
            "spec.policy.approvalRequired",
            f"namespace {out.namespace} requires approval for every Session: "
            "set spec.policy.approvalRequired: true",
        )
    annotations = session.metadata.annotations
    creator = annotations.get(ANNOTATION_CREATED_BY_USER)
    if creator and annotations.get(ANNOTATION_APPROVED_BY) == creator:
        out.add(
            Code.SELF_APPROVED,
            f"metadata.annotations.{ANNOTATION_APPROVED_BY}",
            f"{creator} created this Session and may not approve it: another approver must",
        )


def _storage(storage: StoragePolicy, session: Session, out: _Collector) -> None:
    target = session.spec.artifacts.storage
    if target.type not in storage.allowed_types:
        allowed = sorted(t.value for t in storage.allowed_types)
        out.add(
            Code.STORAGE_TYPE_NOT_ALLOWED,
            "spec.artifacts.storage.type",
            f"storage type {target.type.value} is not allowed in namespace {out.namespace} "
            f"(allowed: {_listing(allowed)})",
        )
        return
    if target.type is StorageType.PVC and target.location:
        claim = target.location
        if claim != ARTIFACTS_CLAIM and not claim.startswith(ARTIFACTS_CLAIM + "-"):
            out.add(
                Code.STORAGE_OUTSIDE_PREFIX,
                "spec.artifacts.storage.location",
                f"a pvc store mounts only claims named {ARTIFACTS_CLAIM} or "
                f"{ARTIFACTS_CLAIM}-<suffix> into the runner, not {claim} (the namespace's "
                "other volumes stay out of reach of agent code)",
            )
        return
    if target.type is not StorageType.S3 or not target.location:
        return
    prefix = storage.prefix(out.namespace)
    bucket, _, key = target.location.removeprefix("s3://").partition("/")
    inside_prefix = key == prefix.rstrip("/") or key.startswith(prefix)
    right_bucket = bool(bucket) and storage.bucket in (None, bucket)
    if not (inside_prefix and right_bucket) or ".." in key.split("/"):
        out.add(
            Code.STORAGE_OUTSIDE_PREFIX,
            "spec.artifacts.storage.location",
            f"s3 location {target.location} is outside namespace {out.namespace}'s "
            f"storage: use {storage.bucket or '<bucket>'}/{prefix}...",
        )
