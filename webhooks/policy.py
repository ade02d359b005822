"""Whether a Session complies with its namespace's NamespacePolicy: one pure function.

``evaluate`` is what the admission webhook (and, for running Sessions, the operator) asks.
It performs no I/O: the policy, the month-to-date usage, the registry and the time are
all passed in, so every rule is tested exhaustively without a cluster. It collects every
violation rather than stopping at the first, so a person fixes a Session in one go.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal

from ambient.crds.models import NamespacePolicy, Session, StorageType, money
from ambient.runners.registry import Registry, UnknownFrameworkError, resolve


@dataclass(frozen=True)
class UserInfo:
    """Who asks, as the API server authenticated them (AdmissionReview userInfo)."""

    username: str
    groups: tuple[str, ...] = ()
    uid: str = ""


@dataclass(frozen=True)
class Usage:
    """The namespace's spend in one calendar month (UTC)."""

    month: str  # YYYY-MM
    month_to_date_spend: Decimal = Decimal(0)


@dataclass(frozen=True)
class StoragePolicy:
    """Where artifacts may go. Until the NamespacePolicy has a storage section, the
    convention is: any storage type, and an s3 location whose path after the bucket starts
    with the namespace (``bucket/<namespace>/...``)."""

    allowed_types: frozenset[StorageType] = frozenset(StorageType)
    prefix_template: str = "{namespace}/"


@dataclass(frozen=True)
class Violation:
    """One reason a Session is refused."""

    code: str
    field: str
    message: str


@dataclass(frozen=True)
class Decision:
    """The verdict with every reason."""

    allowed: bool
    violations: tuple[Violation, ...] = ()
    policy_name: str | None = None

    @property
    def reason(self) -> str:
        """All messages, for an admission response or a status message."""
        return "; ".join(v.message for v in self.violations)


@dataclass
class _Collector:
    namespace: str
    found: list[Violation] = field(default_factory=list)

    def add(self, code: str, path: str, message: str) -> None:
        self.found.append(Violation(code, path, message))


def _listing(names: list[str] | tuple[str, ...]) -> str:
    return ", ".join(names) if names else "none"


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
    """Decide whether ``session`` may run in its namespace.

    A namespace without a NamespacePolicy refuses every Session (default deny) unless the
    operator is configured with a ``default_policy``. ``user`` is accepted so that rules
    about who asks (approvers, runner identities) live here too; the Session rules below
    do not depend on it.
    """
    del user  # No Session rule depends on the requester yet; see the docstring.
    namespace = session.metadata.namespace
    chosen = policy or default_policy
    if chosen is None:
        violation = Violation(
            "NoPolicy",
            "metadata.namespace",
            f"namespace {namespace} has no NamespacePolicy, so no Session may run there: "
            "ask a platform admin to create one",
        )
        return Decision(False, (violation,), None)
    out = _Collector(namespace)
    _framework(session, registry, out)
    _models(chosen, session, out)
    _budget(chosen, session, usage, now, out)
    _tools(chosen, session, out)
    _approval(chosen, session, out)
    _storage(storage or StoragePolicy(), session, out)
    return Decision(not out.found, tuple(out.found), chosen.metadata.name or None)


def _framework(session: Session, registry: Registry, out: _Collector) -> None:
    framework = session.spec.framework
    try:
        resolve(registry, framework.type, framework.version)
    except UnknownFrameworkError as exc:
        out.add("UnknownFramework", "spec.framework", str(exc))


def _models(policy: NamespacePolicy, session: Session, out: _Collector) -> None:
    allowed = policy.spec.models.allowed
    for i, model in enumerate(session.spec.policy.model_constraints.allowed):
        if model not in allowed:
            out.add(
                "ModelNotAllowed",
                f"spec.policy.modelConstraints.allowed[{i}]",
                f"model {model} is not allowed in namespace {out.namespace} "
                f"(allowed: {_listing(allowed)})",
            )


def _budget(
    policy: NamespacePolicy,
    session: Session,
    usage: Usage | None,
    now: datetime,
    out: _Collector,
) -> None:
    """The Session's budget must fit what is left of the namespace's month. A namespace
    with a budget requires every Session to name one: an unbounded runner could spend it all."""
    budget = policy.spec.models.budget
    if budget is None:
        return
    currency = budget.currency
    path = "spec.policy.modelConstraints.budget"
    asked = session.spec.policy.model_constraints.budget
    if asked is None:
        out.add(
            "BudgetRequired",
            path,
            f"namespace {out.namespace} has a monthly budget of {budget.monthly} {currency}: "
            f"set {path} to bound this Session",
        )
        return
    month = now.astimezone(UTC).strftime("%Y-%m")
    spent = usage.month_to_date_spend if usage is not None and usage.month == month else Decimal(0)
    monthly = money(budget.monthly)
    left = max(monthly - spent, Decimal(0))
    if money(asked) > left:
        out.add(
            "BudgetExceeded",
            path,
            f"budget {asked} {currency} exceeds the {left:.2f} {currency} left this month in "
            f"namespace {out.namespace} (monthly {budget.monthly} {currency}, "
            f"spent {spent:.2f} {currency})",
        )


def _tools(policy: NamespacePolicy, session: Session, out: _Collector) -> None:
    allowed, blocked = policy.spec.tools.allowed, policy.spec.tools.blocked
    for i, tool in enumerate(session.spec.policy.tool_constraints.allowed):
        path = f"spec.policy.toolConstraints.allowed[{i}]"
        if tool in blocked:  # blocked wins, even when also listed as allowed
            out.add("ToolBlocked", path, f"tool {tool} is blocked in namespace {out.namespace}")
        elif tool not in allowed:
            out.add(
                "ToolNotAllowed",
                path,
                f"tool {tool} is not allowed in namespace {out.namespace} "
                f"(allowed: {_listing(allowed)})",
            )


def _approval(policy: NamespacePolicy, session: Session, out: _Collector) -> None:
    if policy.spec.approval.required and not session.spec.policy.approval_required:
        out.add(
            "ApprovalRequired",
            "spec.policy.approvalRequired",
            f"namespace {out.namespace} requires approval for every Session: "
            "set spec.policy.approvalRequired: true",
        )


def _storage(storage: StoragePolicy, session: Session, out: _Collector) -> None:
    target = session.spec.artifacts.storage
    if target.type not in storage.allowed_types:
        allowed = sorted(t.value for t in storage.allowed_types)
        out.add(
            "StorageTypeNotAllowed",
            "spec.artifacts.storage.type",
            f"storage type {target.type.value} is not allowed in namespace {out.namespace} "
            f"(allowed: {_listing(allowed)})",
        )
        return
    if target.type is StorageType.S3 and target.location:
        prefix = storage.prefix_template.format(namespace=out.namespace)
        location = target.location.removeprefix("s3://")
        _bucket, _, path = location.partition("/")
        if not path.startswith(prefix) or ".." in path.split("/"):
            out.add(
                "StorageOutsidePrefix",
                "spec.artifacts.storage.location",
                f"s3 location {target.location} is outside namespace {out.namespace}'s "
                f"prefix (expected <bucket>/{prefix}...)",
            )
