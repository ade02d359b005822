"""Admission decisions, as pure functions of an AdmissionReview request and cached state.

``review`` answers one request: the Session policy check on create, who may write what on
update (spec, approval and cancel marks, status), the append-only history on every write,
and the shape of NamespacePolicies. Anything it does not recognise is denied: the webhook
is registered for exactly these resources, so an unknown one means a misconfiguration.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import pydantic

from ambient.common.policy import UserInfo, evaluate
from ambient.common.retention import parse_duration
from ambient.crds.history import runner_entry_problems, transition_problems
from ambient.crds.models import (
    GROUP,
    MAX_FRAMEWORK_CONFIG_BYTES,
    ApiKeys,
    NamespacePolicy,
    Session,
    Usage,
    money,
)
from ambient.crds.naming import (
    ANNOTATION_APPROVED_BY,
    ANNOTATION_CANCELLED_BY,
    ANNOTATION_CREATED_BY_USER,
    ANNOTATION_REPLAYED_BY,
    runner_username,
)
from ambient.runners.registry import Registry
from ambient.webhooks.ingress import routing

# Marks whose value must be the person who set them: they go into the Session's history.
SIGNED_ANNOTATIONS = (ANNOTATION_APPROVED_BY, ANNOTATION_CANCELLED_BY, ANNOTATION_REPLAYED_BY)
# Spec fields that may change after creation (everything else is the record of what was
# asked for, and stays as it was).
MUTABLE_SPEC_FIELDS = frozenset({"cancel"})
# What a runner may change in its own Session's status (the runner contract).
RUNNER_STATUS_FIELDS = frozenset({"history", "artifacts", "usage"})
KEY_HASH = re.compile(r"^[0-9a-f]{64}$")
KEY_SOURCES = tuple(ApiKeys.model_fields)  # github, jira, slack, alertmanager, generic


@dataclass(frozen=True)
class Identities:
    """Who may write Session status besides each Session's own runner."""

    operator_usernames: frozenset[str] = frozenset()
    operator_groups: frozenset[str] = frozenset()

    def is_operator(self, user: UserInfo) -> bool:
        return user.username in self.operator_usernames or bool(
            self.operator_groups.intersection(user.groups)
        )


@dataclass(frozen=True)
class Verdict:
    """The answer, with every reason, and what the audit record says about it."""

    allowed: bool
    reasons: tuple[str, ...] = ()
    code: int = 200
    action: str = ""
    warnings: tuple[str, ...] = ()

    @property
    def message(self) -> str:
        return "; ".join(self.reasons)


def allow(action: str, warnings: Iterable[str] = ()) -> Verdict:
    return Verdict(True, (), 200, action, tuple(warnings))


def deny(action: str, *reasons: str, code: int = 403) -> Verdict:
    return Verdict(False, tuple(reasons), code, action)


@dataclass(frozen=True)
class State:
    """What the webhook knows besides the request: the policies (from its watch cache)."""

    policies: Mapping[str, list[NamespacePolicy]]
    """NamespacePolicies by namespace."""
    registry: Registry
    identities: Identities
    now: datetime
    default_policy: NamespacePolicy | None = None
    key_owners: Mapping[str, str] = field(default_factory=dict)
    """Webhook key hash -> the namespace whose policy lists it."""
    signing_secrets: frozenset[str] = frozenset()
    """The Secret names a signingSecretRef may name (empty: any)."""


def user_of(request: Mapping[str, Any]) -> UserInfo:
    info = request.get("userInfo")
    info = info if isinstance(info, Mapping) else {}
    groups = info.get("groups")
    return UserInfo(
        username=str(info.get("username", "")),
        groups=tuple(str(g) for g in groups) if isinstance(groups, list) else (),
        uid=str(info.get("uid", "")),
    )


def _text(value: Any) -> str:
    """A field the API server always sends as a string; anything else reads as empty."""
    return value if isinstance(value, str) else ""


def review(request: Mapping[str, Any], state: State) -> Verdict:
    """Decide one AdmissionReview request (``request`` is ``AdmissionReview.request``)."""
    resource = request.get("resource")
    resource = resource if isinstance(resource, Mapping) else {}
    kind = (
        _text(resource.get("group")),
        _text(resource.get("resource")),
        _text(request.get("subResource")),
    )
    operation = _text(request.get("operation"))
    action = f"{operation} {kind[1]}{'/' + kind[2] if kind[2] else ''}"
    if kind[0] != GROUP or operation not in ("CREATE", "UPDATE"):
        return deny(action, f"this webhook does not handle {action} of {kind[0]}: deny")
    try:
        if kind[1:] == ("sessions", ""):
            return _session(request, state, action)
        if kind[1:] == ("sessions", "status"):
            return _session_status(request, state, action)
        if kind[1:] == ("namespacepolicies", ""):
            return _policy(request, state, action)
    except pydantic.ValidationError as exc:
        problems = [
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()[:5]
        ]
        return deny(action, f"the object is not valid: {'; '.join(problems)}", code=422)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        # Fail closed: what cannot be evaluated is refused, with the reason.
        return deny(action, f"the request could not be evaluated: {_first_line(exc)}")
    return deny(action, f"this webhook does not handle {action}: deny")


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


# --- Sessions ---------------------------------------------------------------------------


def _session(request: Mapping[str, Any], state: State, action: str) -> Verdict:
    user = user_of(request)
    new = _with_namespace(request["object"], request)
    session = Session.model_validate(new)
    namespace = session.metadata.namespace
    policy = _policy_of(state, namespace)
    reasons: list[str] = []
    old: Mapping[str, Any] = request.get("oldObject") or {}
    if request["operation"] == "CREATE":
        decision = evaluate(
            policy,
            session,
            user,
            None,
            state.registry,
            now=state.now,
            default_policy=state.default_policy,
        )
        reasons.extend(v.message for v in decision.violations)
        reasons.extend(_config_size(new))
        old_annotations: Mapping[str, str] = {}
    else:
        old_session = Session.model_validate(_with_namespace(old, request))
        reasons.extend(_spec_changes(old.get("spec") or {}, new.get("spec") or {}))
        reasons.extend(_history(old_session, session))
        old_annotations = old_session.metadata.annotations
    reasons.extend(
        _signed_annotations(old_annotations, session.metadata.annotations, user, policy, state)
    )
    reasons.extend(
        _creator(request["operation"], old_annotations, session.metadata.annotations, user)
    )
    return deny(action, *reasons) if reasons else allow(action)


def _creator(
    operation: str, old: Mapping[str, str], new: Mapping[str, str], user: UserInfo
) -> list[str]:
    """The creator is who the API server says created the Session and never changes, and
    an approver may not approve a Session they created (four eyes)."""
    reasons = []
    creator = new.get(ANNOTATION_CREATED_BY_USER)
    if operation == "CREATE":
        if creator is not None and creator != user.username:
            reasons.append(
                f"annotation {ANNOTATION_CREATED_BY_USER} names who creates the Session "
                f"({user.username!r}), not {creator!r}: leave it out (admission sets it "
                "where the Session waits for approval)"
            )
        # With the creator stamped, common.policy says it (SelfApproved); this covers a
        # cluster without the mutating webhook.
        if new.get(ANNOTATION_APPROVED_BY) == user.username and creator != user.username:
            reasons.append(
                f"{user.username} may not approve a Session they create: another approver "
                f"must set {ANNOTATION_APPROVED_BY}"
            )
        return reasons
    if creator != old.get(ANNOTATION_CREATED_BY_USER):
        reasons.append(f"annotation {ANNOTATION_CREATED_BY_USER} cannot change")
    approving = new.get(ANNOTATION_APPROVED_BY) != old.get(ANNOTATION_APPROVED_BY)
    if approving and old.get(ANNOTATION_CREATED_BY_USER) == user.username:
        reasons.append(
            f"{user.username} may not approve a Session they created: another approver "
            f"must set {ANNOTATION_APPROVED_BY}"
        )
    return reasons


def _config_size(body: Mapping[str, Any]) -> list[str]:
    """spec.framework.config within MAX_FRAMEWORK_CONFIG_BYTES as compact JSON (issue 17,
    finding 9: a few hundred large configs would fill the operator's memory)."""
    config = ((body.get("spec") or {}).get("framework") or {}).get("config") or {}
    size = len(json.dumps(config, separators=(",", ":")).encode())
    if size <= MAX_FRAMEWORK_CONFIG_BYTES:
        return []
    return [
        f"spec.framework.config is {size} bytes as JSON, more than "
        f"{MAX_FRAMEWORK_CONFIG_BYTES}: put large inputs in the task or a referenced object"
    ]


def _usage_lowered(old: Usage, new: Usage) -> list[str]:
    """Usage only grows (issue 17, finding 6): the budget is charged what was reported."""
    lowered = [
        name
        for name, before, after in (
            ("inputTokens", old.input_tokens, new.input_tokens),
            ("outputTokens", old.output_tokens, new.output_tokens),
            ("cost", money(old.cost), money(new.cost)),
        )
        if after < before
    ]
    if not lowered:
        return []
    return [f"status.usage only grows: {', '.join(f'status.usage.{n}' for n in lowered)} lowered"]


def _with_namespace(body: Mapping[str, Any], request: Mapping[str, Any]) -> dict[str, Any]:
    """The object with its namespace: on create it may only be in the request."""
    obj = dict(body)
    metadata = dict(obj.get("metadata") or {})
    metadata.setdefault("namespace", request.get("namespace") or "")
    if not metadata.get("namespace"):
        metadata["namespace"] = request.get("namespace") or ""
    obj["metadata"] = metadata
    return obj


def _policy_of(state: State, namespace: str) -> NamespacePolicy | None:
    found = state.policies.get(namespace) or []
    if len(found) > 1:
        # Two policies would make the decision depend on which one is read: refuse.
        names = ", ".join(sorted(p.metadata.name for p in found))
        raise ValueError(f"namespace {namespace} has more than one NamespacePolicy ({names})")
    return found[0] if found else None


def _spec_changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    changed = sorted(
        k for k in set(old) | set(new) if k not in MUTABLE_SPEC_FIELDS and old.get(k) != new.get(k)
    )
    if not changed:
        return []
    fields = ", ".join(f"spec.{k}" for k in changed)
    return [
        f"{fields} cannot change after the Session is created (only spec.cancel can); "
        "create a new Session instead"
    ]


def _signed_annotations(
    old: Mapping[str, str],
    new: Mapping[str, str],
    user: UserInfo,
    policy: NamespacePolicy | None,
    state: State,
) -> list[str]:
    reasons = []
    for key in SIGNED_ANNOTATIONS:
        if old.get(key) == new.get(key):
            continue
        if key in old and key not in new:
            reasons.append(f"annotation {key} cannot be removed once set")
            continue
        if new.get(key) != user.username:
            reasons.append(
                f"annotation {key} must name who sets it: set it to {user.username!r}, "
                f"not {new.get(key)!r}"
            )
        if key == ANNOTATION_APPROVED_BY and not _is_approver(user, policy or state.default_policy):
            approvers = ", ".join(
                (policy or state.default_policy or NamespacePolicy()).spec.approval.approvers
            )
            reasons.append(
                f"{user.username} may not approve Sessions in this namespace "
                f"(approvers: {approvers or 'none configured'})"
            )
    return reasons


def _is_approver(user: UserInfo, policy: NamespacePolicy | None) -> bool:
    """Approvers are listed as ``user:<name>``, ``group:<name>``, or a bare name that
    matches either (as the API server authenticated the requester)."""
    if policy is None:
        return False
    for entry in policy.spec.approval.approvers:
        kind, _, name = entry.partition(":") if ":" in entry else ("", "", entry)
        if kind == "user" and name == user.username:
            return True
        if kind == "group" and name in user.groups:
            return True
        if not kind and (entry == user.username or entry in user.groups):
            return True
    return False


def _history(old: Session, new: Session) -> list[str]:
    """History only grows at the end, except that one write may move a prefix to an
    archive record that covers it exactly (history.transition_problems says how)."""
    return transition_problems(
        old.status.history,
        old.status.history_archives,
        new.status.history,
        new.status.history_archives,
    )


def _session_status(request: Mapping[str, Any], state: State, action: str) -> Verdict:
    user = user_of(request)
    if request["operation"] != "UPDATE":
        return deny(action, f"{action} is not a status write")
    new_body = _with_namespace(request["object"], request)
    old_body = _with_namespace(request["oldObject"], request)
    new, old = Session.model_validate(new_body), Session.model_validate(old_body)
    reasons = _history(old, new) + _usage_lowered(old.status.usage, new.status.usage)
    if state.identities.is_operator(user):
        pass
    elif user.username == runner_username(new.metadata.namespace, new.metadata.name):
        old_status = old_body.get("status") or {}
        new_status = new_body.get("status") or {}
        changed = sorted(
            k
            for k in set(old_status) | set(new_status)
            if k not in RUNNER_STATUS_FIELDS and old_status.get(k) != new_status.get(k)
        )
        if changed:
            reasons.append(
                "a runner may only append history and report artifacts and usage; "
                f"it changed status.{', status.'.join(changed)}"
            )
        if not reasons:  # the entries it appended are its own (issue 17, finding 7)
            reasons.extend(runner_entry_problems(old.status.history, new.status.history))
    else:
        reasons.append(
            f"{user.username} may not write the status of Session "
            f"{new.metadata.namespace}/{new.metadata.name}: only the operator and the "
            "Session's own runner can"
        )
    return deny(action, *reasons) if reasons else allow(action)


# --- NamespacePolicies ------------------------------------------------------------------


def _policy(request: Mapping[str, Any], state: State, action: str) -> Verdict:
    body = _with_namespace(request["object"], request)
    # Key hashes first, from the raw object: a string-or-list field the schema cannot type.
    keys = ((body.get("spec") or {}).get("webhookAuth") or {}).get("apiKeys") or {}
    reasons = _key_hashes(keys, body["metadata"]["namespace"], state)
    if reasons:
        return deny(action, *reasons)
    policy = NamespacePolicy.model_validate(body)
    namespace, name = policy.metadata.namespace, policy.metadata.name
    others = [p.metadata.name for p in state.policies.get(namespace, []) if p.metadata.name != name]
    if others and request["operation"] == "CREATE":
        reasons.append(
            f"namespace {namespace} already has NamespacePolicy {others[0]}: "
            "one policy per namespace; edit that one instead"
        )
    retention = policy.spec.retention
    for label, value in (
        ("sessions", retention.sessions),
        ("artifacts", retention.artifacts),
        ("auditLogs", retention.audit_logs),
    ):
        try:
            parse_duration(value)
        except ValueError as exc:
            reasons.append(f"spec.retention.{label}: {exc}")
    if state.signing_secrets:
        allowed = ", ".join(sorted(state.signing_secrets))
        for where, ref in (
            ("spec.webhookAuth.signingSecretRef", policy.spec.webhook_auth.signing_secret_ref),
            ("spec.notifications.signingSecretRef", policy.spec.notifications.signing_secret_ref),
        ):
            if ref is not None and ref.name not in state.signing_secrets:
                reasons.append(
                    f"{where}.name {ref.name!r} is not a Secret the platform may read "
                    f"(allowed: {allowed}); keep the signing secrets there"
                )
    # Route filters and templates compile here or the policy is refused: never a surprise
    # at delivery time.
    reasons.extend(routing.problems(policy.spec.ingress.routes))
    for i, hook in enumerate(policy.spec.notifications.webhooks):
        url = urlsplit(hook.url)
        if url.scheme != "https" or not url.hostname:
            reasons.append(f"spec.notifications.webhooks[{i}].url must be an https URL with a host")
    return deny(action, *reasons) if reasons else allow(action)


def _key_hashes(keys: Mapping[str, Any], namespace: str, state: State) -> list[str]:
    reasons: list[str] = []
    if not isinstance(keys, Mapping):
        return [f"spec.webhookAuth.apiKeys must map {', '.join(KEY_SOURCES)} to key hashes"]
    for source, value in sorted(keys.items()):
        where = f"spec.webhookAuth.apiKeys.{source}"
        if source not in KEY_SOURCES:
            reasons.append(f"{where}: unknown source ({', '.join(KEY_SOURCES)})")
            continue
        hashes = [value] if isinstance(value, str) else value
        if not isinstance(hashes, list) or not all(isinstance(h, str) for h in hashes):
            reasons.append(f"{where} must be a SHA-256 hex string or a list of them")
            continue
        for h in hashes:
            if not KEY_HASH.fullmatch(h):
                reasons.append(
                    f"{where}: {h[:12]!r}... is not a key hash (64 lowercase hex characters: "
                    "the SHA-256 of the key, never the key itself)"
                )
            elif state.key_owners.get(h, namespace) != namespace:
                reasons.append(f"{where}: this key hash is already used by another namespace")
        if len(set(hashes)) != len(hashes):
            reasons.append(f"{where} lists the same hash twice")
    return reasons
