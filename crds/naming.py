"""Deterministic names for everything the operator creates (never generateName).

A name derived from the Session means a restarted operator finds what it made before, and
a second create answers 409 AlreadyExists instead of making a duplicate.
"""

from __future__ import annotations

import re

from ambient.crds.digests import sha256_hex

MAX_NAME = 63  # Job names end up in the pods' job-name label, which caps them at 63.

DNS_SUBDOMAIN_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
"""A DNS-1123 subdomain: what Kubernetes requires of a Secret's (and most objects') name."""
MAX_SUBDOMAIN = 253
DNS_LABEL_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
"""A DNS-1123 label: what Kubernetes requires of a namespace's name."""
MAX_LABEL = 63
_SUBDOMAIN = re.compile(DNS_SUBDOMAIN_PATTERN)
_LABEL = re.compile(DNS_LABEL_PATTERN)

LABEL_SESSION = "ambient.ai/session"
LABEL_FRAMEWORK = "ambient.ai/framework"
LABEL_ATTEMPT = "ambient.ai/attempt"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGED_BY = "ambient-operator"
LABEL_TRIGGER_SOURCE = "ambient.ai/trigger-source"
"""On an ingress-created Session: the source that sent the delivery (github, jira, slack,
alertmanager, generic)."""
LABEL_CREATED_BY = "ambient.ai/created-by"
"""On an ingress-created Session: CREATED_BY_INGRESS."""
CREATED_BY_INGRESS = "ambient-ingress"
ANNOTATION_APPROVED_BY = "ambient.ai/approved-by"
ANNOTATION_CONTEXT = "ambient.ai/context"
ANNOTATION_CANCELLED_BY = "ambient.ai/cancelled-by"
"""Who cancelled a Session; set alongside spec.cancel (the admission webhook may stamp it)."""
ANNOTATION_TRACE_ID = "ambient.ai/trace-id"
"""On an ingress-created Session: the trace id of the delivery that created it, which the
operator's log lines about the Session carry (and the sender's answer, X-Trace-Id)."""
ANNOTATION_REPLAYED_BY = "ambient.ai/replayed-by"
"""Who replayed the stored delivery this Session came from (the admission webhook checks
it names the creator)."""
ANNOTATION_REPLAYED_FROM = "ambient.ai/replayed-from"
"""The trace id of the delivery a replay re-ran."""
ANNOTATION_CREATED_BY_USER = "ambient.ai/created-by-user"
"""Who created the Session, as the API server authenticated them: stamped by the admission
webhook (mutating) from the request's userInfo, never taken from the creator, and
immutable. Approvers may not approve Sessions they created."""
ARTIFACTS_CLAIM = "ambient-artifacts"
"""A pvc artifact store mounts only a PersistentVolumeClaim of this name, or this name
followed by ``-<suffix>``, in the Session's namespace (checked by common.policy)."""
SIMULATION_PREFIX = "sim.ambient.ai/"


def _fit(base: str, suffix: str) -> str:
    """base+suffix within 63 characters; a hash keeps shortened names distinct."""
    if len(base) + len(suffix) <= MAX_NAME:
        return base + suffix
    digest = sha256_hex(base)[:8]
    keep = MAX_NAME - len(suffix) - len(digest) - 1
    return f"{base[:keep].rstrip('-.')}-{digest}{suffix}"


def job_name(session: str, attempt: int = 1) -> str:
    """The runner Job of a Session's attempt: <session>-a<attempt>."""
    return _fit(session, f"-a{attempt}")


def context_configmap_name(job: str) -> str:
    """The ConfigMap that carries a context too large for an annotation."""
    return _fit(job, "-ctx")


def session_label_value(session: str) -> str:
    """Label values are capped at 63 characters too."""
    return _fit(session, "")


def runner_service_account(session: str) -> str:
    """The ServiceAccount a Session's runner Jobs run as (one per Session).

    The admission webhook recognises the runner by this name in ``userInfo.username``
    (``system:serviceaccount:<namespace>:<this>``), so both sides must derive it here.
    """
    return _fit(session, "-runner")


def runner_username(namespace: str, session: str) -> str:
    """The API server's username for a Session's runner identity."""
    return f"system:serviceaccount:{namespace}:{runner_service_account(session)}"


class InvalidNameError(ValueError):
    """A name that Kubernetes would never give an object: refused before it reaches a URL."""


def is_dns_subdomain(name: object) -> bool:
    """True for a DNS-1123 subdomain of at most 253 characters (a Secret's name)."""
    # fullmatch, not $: '$' also matches before a trailing newline.
    return isinstance(name, str) and len(name) <= MAX_SUBDOMAIN and bool(_SUBDOMAIN.fullmatch(name))


def is_dns_label(name: object) -> bool:
    """True for a DNS-1123 label of at most 63 characters (a namespace's name)."""
    return isinstance(name, str) and len(name) <= MAX_LABEL and bool(_LABEL.fullmatch(name))


def object_name(name: object, what: str = "object") -> str:
    """``name`` when it is a valid object name (a DNS-1123 subdomain), else InvalidNameError.

    Called where a name from a tenant's object becomes part of an API path: a name such as
    ``../../team-alpha/secrets/x`` would otherwise walk the path into another namespace.
    """
    if isinstance(name, str) and is_dns_subdomain(name):
        return name
    raise InvalidNameError(
        f"{what} name {_shown(name)} is not a valid Kubernetes name (a DNS-1123 "
        f"subdomain: lowercase letters, digits, '-' and '.', at most {MAX_SUBDOMAIN})"
    )


def namespace_name(name: object) -> str:
    """``name`` when it is a valid namespace name (a DNS-1123 label), else InvalidNameError."""
    if isinstance(name, str) and is_dns_label(name):
        return name
    raise InvalidNameError(
        f"namespace {_shown(name)} is not a valid Kubernetes namespace name (a DNS-1123 "
        f"label: lowercase letters, digits and '-', at most {MAX_LABEL})"
    )


def _shown(name: object) -> str:
    """The offending name for an error message, shortened (it is the caller's input)."""
    text = repr(name)
    return text if len(text) <= 80 else text[:77] + "..."
