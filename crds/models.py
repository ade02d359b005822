"""The API: pydantic models of Session and NamespacePolicy (group ambient.ai, v1alpha1).

These models are the single source of truth. The CRD YAML next to this file is generated
from them (``python -m ambient.crds.generate``), and a unit test fails when the committed
YAML drifts. Attribute docstrings become the schema descriptions that ``kubectl explain``
shows, so they are written for the person reading that output.

Kubernetes-specific schema markers (CEL rules, list types, preserve-unknown-fields) are
attached with ``json_schema_extra`` and carried into the CRD by the generator.
"""

from __future__ import annotations

import re
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.alias_generators import to_camel

from ambient.crds import addresses
from ambient.crds.naming import (
    DNS_LABEL_PATTERN,
    DNS_SUBDOMAIN_PATTERN,
    MAX_SUBDOMAIN,
    is_dns_subdomain,
)

GROUP = "ambient.ai"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"

MAX_HISTORY_ENTRIES = 1000
"""The spec's per-Session history cap (of status.history, the window kept in the object);
older entries are archived to the artifact store, never dropped."""
MAX_HISTORY_SEQ = 1_000_000
"""The highest seq a history entry can have: a Session's whole trail, archives included."""
MAX_HISTORY_ARCHIVES = 1000
"""Archive records a Session can hold (at the default 200 entries each, a trail of 200,000).

The object's budget under etcd's 1.5 MiB: an inline payload of at most 256 KiB (larger ones
are in the store), a history window the operator keeps under 384 KiB, and at most 1,000
archive records of about 300 bytes: about 1 MiB in the worst case."""
MAX_GENERATED_ARTIFACTS = 100
"""The spec's per-Session artifact cap."""
MAX_FRAMEWORK_CONFIG_KEYS = 64
MAX_FRAMEWORK_CONFIG_BYTES = 64 * 1024
"""spec.framework.config as compact JSON: one tenant's Sessions cannot fill the operator's
memory with configuration (issue 17, finding 9). The schema cannot measure a serialized
size, so the admission webhook checks it; the schema bounds the keys."""
MAX_HISTORY_VALUE = 4096
"""The most characters a history data value holds (writers cut longer ones)."""
CARRIED_DATA_KEY = "carried"
"""The data key of a HistoryArchived entry that lists the operator's archived entries
(crds/history.py); it alone may be longer."""
MAX_CARRIED_VALUE = 256 * 1024
"""The most characters that list holds (one row of about 90 per operator entry ever)."""

MONEY_PATTERN = r"^(0|[1-9][0-9]{0,11})(\.[0-9]{1,2})?$"
NAME_PATTERN = r"^[A-Za-z0-9][-A-Za-z0-9._:/@]*$"
DURATION_PATTERN = r"^[1-9][0-9]{0,4}[hdwy]$"

PRESERVE: dict[str, Any] = {"x-kubernetes-preserve-unknown-fields": True}

Money = Annotated[
    str,
    Field(
        pattern=MONEY_PATTERN,
        max_length=16,
        examples=["100.00"],
        description="An amount of money as a decimal string with at most two decimals.",
    ),
]
Name = Annotated[str, Field(min_length=1, max_length=128, pattern=NAME_PATTERN)]
"""A model or tool name, e.g. claude-3-sonnet or Bash."""
ObjectName = Annotated[
    str, Field(min_length=1, max_length=MAX_SUBDOMAIN, pattern=DNS_SUBDOMAIN_PATTERN)
]
"""The name of a Kubernetes object (a Secret, a claim): a DNS-1123 subdomain, as the API
server requires. Anything else (a '/' or '..') could walk an API path out of the namespace."""


def money(value: str) -> Decimal:
    """Parse a Money string. Decimal, never float: budgets are compared to the cent."""
    if not re.fullmatch(MONEY_PATTERN, value):
        raise ValueError(f"{value!r} is not an amount of money like '100.00'")
    return Decimal(value)


class ApiModel(BaseModel):
    """Base: camelCase on the wire, attribute docstrings as descriptions, no extras."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        use_attribute_docstrings=True,
        extra="forbid",
        serialize_by_alias=True,
    )


# --- Session.spec -------------------------------------------------------------------------


class TriggerSource(StrEnum):
    """Where a Session came from."""

    GITHUB = "github"
    JIRA = "jira"
    SLACK = "slack"
    ALERTMANAGER = "alertmanager"
    MANUAL = "manual"
    API = "api"
    GENERIC = "generic"


class PayloadRef(ApiModel):
    """Where a payload too large to keep inside the object was stored."""

    location: str = Field(min_length=1, max_length=1024)
    """URI of the stored payload, e.g. s3://bucket/team-alpha/payloads/<delivery>.json."""
    size: int = Field(ge=0)
    """Size of the stored payload in bytes."""
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    """Lowercase hex SHA-256 of the stored payload, to verify what is read back."""


class ReplyTarget(ApiModel):
    """Where the outcome of a Session goes back to: the conversation its event came from.

    Set by the webhook ingress from the event (small, so it stays when the payload itself
    is offloaded); the operator posts there with the namespace's own source credentials
    (Secret ambient-source-credentials), so a hand-written target reaches nothing those
    credentials could not."""

    repository: str | None = Field(
        default=None, max_length=256, pattern=r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$"
    )
    """GitHub: the repository as owner/name."""
    number: int | None = Field(default=None, ge=1)
    """GitHub: the pull request or issue number the reply is a comment on."""
    head_sha: str | None = Field(default=None, pattern=r"^[0-9a-f]{40}$")
    """GitHub: the pull request's head commit, for a check run."""
    issue_key: str | None = Field(default=None, max_length=64, pattern=r"^[A-Za-z0-9_]+-[0-9]+$")
    """Jira: the issue key, e.g. OPS-42 (the site comes from the credentials Secret)."""
    channel: str | None = Field(default=None, max_length=64, pattern=r"^[A-Za-z0-9]+$")
    """Slack: the channel id the event came from."""
    thread_ts: str | None = Field(default=None, max_length=32, pattern=r"^[0-9]+(\.[0-9]+)?$")
    """Slack: the thread to reply in (the mention's thread_ts, else its own ts)."""


class Trigger(ApiModel):
    """What started the Session. Immutable once the Session exists."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {"rule": "self == oldSelf", "message": "spec.trigger is immutable"}
            ]
        }
    )

    source: TriggerSource
    """The system that sent the event: github, jira, slack, alertmanager, generic (a Standard Webhooks sender), manual or api."""  # noqa: E501
    event: str = Field(min_length=1, max_length=128)
    """The event type with its action, e.g. pull_request.opened or jira:issue_created."""
    payload: dict[str, Any] = Field(
        default_factory=dict,
        # Atomic: field ownership is tracked for the payload as one value, not for each of
        # its (thousands of) keys, which halves the API server's work per Session write.
        json_schema_extra={**PRESERVE, "x-kubernetes-map-type": "atomic"},
    )
    """The original event payload, kept as received (or empty when payloadRef is set)."""
    payload_ref: PayloadRef | None = None
    """Set instead of payload when the payload was too large to keep inside the object."""
    delivery_id: str | None = Field(default=None, max_length=128)
    """The sender's delivery id (X-GitHub-Delivery, Jira webhook id, Slack event_id)."""
    reply_to: ReplyTarget | None = None
    """Where the outcome is replied to (GitHub issue or pull request, Jira issue, Slack thread); none: no reply."""  # noqa: E501


class Framework(ApiModel):
    """Which runner does the work; resolved through the operator's runner registry."""

    type: str = Field(min_length=1, max_length=63, pattern=DNS_LABEL_PATTERN)
    """Runner framework type, e.g. claude-code, script, langgraph. Must be in the registry."""
    version: str = Field(default="latest", min_length=1, max_length=32)
    """Framework version as listed in the runner registry, or 'latest'."""
    config: dict[str, Any] = Field(
        default_factory=dict,
        json_schema_extra={**PRESERVE, "maxProperties": MAX_FRAMEWORK_CONFIG_KEYS},
    )
    """Framework-specific configuration, handed to the runner unchanged. At most 64 keys and 64 KiB as JSON (the admission webhook checks the size)."""  # noqa: E501


class ModelConstraints(ApiModel):
    """Which models the Session may use and how much it may spend."""

    allowed: list[Name] = Field(default_factory=list, max_length=64)
    """Model names the Session may call; each must be allowed by the NamespacePolicy."""
    budget: Money | None = None
    """Most the Session may spend, in the NamespacePolicy's currency, e.g. '100.00'."""


class ToolConstraints(ApiModel):
    """Which tools the Session's agent may use."""

    allowed: list[Name] = Field(default_factory=list, max_length=128)
    """Tool names the agent may use; a subset of the NamespacePolicy's allowed tools."""


class SessionPolicy(ApiModel):
    """The constraints this Session runs under; checked against its NamespacePolicy."""

    model_constraints: ModelConstraints = Field(default_factory=ModelConstraints)
    """Models and budget."""
    tool_constraints: ToolConstraints = Field(default_factory=ToolConstraints)
    """Tools."""
    approval_required: bool = False
    """When true, no Job is created until the Session is approved (annotation ambient.ai/approved-by, set by an approver)."""  # noqa: E501


class StorageType(StrEnum):
    """Where artifacts are stored."""

    S3 = "s3"
    PVC = "pvc"
    EXTERNAL = "external"


# The same pattern inside a CEL string literal, where '\.' is not a valid escape.
_CEL_SUBDOMAIN = DNS_SUBDOMAIN_PATTERN.replace("\\.", "[.]")


class ArtifactStorage(ApiModel):
    """Where the runner stores what it produces."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    # A claim is an object of the Session's namespace: only a valid name.
                    "rule": "self.type != 'pvc' || size(self.location) == 0 || "
                    f"(size(self.location) <= {MAX_SUBDOMAIN} && "
                    f"self.location.matches('{_CEL_SUBDOMAIN}'))",
                    "message": "spec.artifacts.storage.location of a pvc store must be a "
                    "PersistentVolumeClaim name (a DNS-1123 subdomain: lowercase letters, "
                    "digits, '-' and '.')",
                }
            ]
        }
    )

    type: StorageType = StorageType.S3
    """s3 (bucket and prefix), pvc (a claim mounted into the runner) or external (references only)."""  # noqa: E501
    location: str = Field(default="", max_length=1024)
    """Bucket and prefix (s3), claim name (pvc) or a URI (external)."""

    @model_validator(mode="after")
    def _claim_name(self) -> ArtifactStorage:
        """The CEL rule above, for readers of the model (the admission webhook, the operator)."""
        if self.type == StorageType.PVC and self.location and not is_dns_subdomain(self.location):
            raise ValueError(
                "a pvc store's location must be a PersistentVolumeClaim name (a DNS-1123 subdomain)"
            )
        return self


class ArtifactReference(ApiModel):
    """A framework-agnostic pointer to an input artifact."""

    name: str = Field(min_length=1, max_length=253)
    """Name the runner knows the artifact by."""
    location: str = Field(min_length=1, max_length=1024)
    """URI of the artifact."""
    type: str = Field(default="input", max_length=63)
    """Kind of artifact, e.g. input, repository, document."""


class SessionArtifacts(ApiModel):
    """Input artifacts and where outputs go."""

    references: list[ArtifactReference] = Field(default_factory=list, max_length=100)
    """Framework-agnostic references to inputs."""
    storage: ArtifactStorage = Field(default_factory=ArtifactStorage)
    """Where generated artifacts are stored."""


class SessionSpec(ApiModel):
    """What the Session should do, and under which constraints."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "!has(oldSelf.cancel) || !oldSelf.cancel || "
                    "(has(self.cancel) && self.cancel)",
                    "message": "spec.cancel cannot be undone: a cancelled Session stays cancelled",
                }
            ]
        }
    )

    trigger: Trigger
    """What started the Session. Immutable."""
    framework: Framework
    """Which runner does the work."""
    policy: SessionPolicy = Field(default_factory=SessionPolicy)
    """Constraints for this Session; must comply with the namespace's NamespacePolicy."""
    artifacts: SessionArtifacts = Field(default_factory=SessionArtifacts)
    """Input references and output storage."""
    timeout_seconds: int | None = Field(default=None, ge=1, le=7 * 24 * 3600)
    """Most seconds the runner may run (the Job's activeDeadlineSeconds); the registry default when unset."""  # noqa: E501
    cancel: bool = False
    """Set to true to cancel the Session (kubectl patch session NAME --type merge -p '{"spec":{"cancel":true}}'); its Job and pods are removed and it ends Failed, reason Cancelled. Set annotation ambient.ai/cancelled-by alongside to record who cancelled."""  # noqa: E501


# --- Session.status -----------------------------------------------------------------------


class Phase(StrEnum):
    """The spec's four phases. Finer states are status.reason plus conditions."""

    PENDING = "Pending"
    RUNNING = "Running"
    COMPLETED = "Completed"
    FAILED = "Failed"


TERMINAL_PHASES = frozenset({Phase.COMPLETED, Phase.FAILED})


class ConditionStatus(StrEnum):
    """Kubernetes condition status."""

    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


class Condition(ApiModel):
    """A condition as the Kubernetes API conventions define it."""

    type: str = Field(min_length=1, max_length=316)
    """Condition type in CamelCase, e.g. PolicyValidated, WorkloadCreated, Succeeded."""
    status: ConditionStatus
    """True, False or Unknown."""
    reason: str = Field(default="", max_length=1024)
    """One CamelCase word saying why the condition is in its status."""
    message: str = Field(default="", max_length=32768)
    """A human-readable explanation."""
    last_transition_time: str
    """When the status last changed (RFC 3339)."""
    observed_generation: int | None = Field(default=None, ge=0)
    """The metadata.generation this condition was set for."""


class HistoryEntry(ApiModel):
    """One append-only history entry. Entries are never changed, reordered or removed."""

    seq: int = Field(ge=0, le=MAX_HISTORY_SEQ)
    """Position of the entry in the whole trail (0, 1, 2, ...), archived entries included; with the CEL rules it makes the list append-only."""  # noqa: E501
    id: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/-]*$")
    """Stable id, so that writers can append idempotently (an entry with this id is added once)."""
    timestamp: str = Field(max_length=40)
    """When it happened (RFC 3339)."""
    event: str = Field(min_length=1, max_length=128)
    """What happened, in CamelCase, e.g. SessionCreated, WorkloadStarted, WorkloadFailed."""
    data: dict[str, str] = Field(
        default_factory=dict,
        json_schema_extra={
            "maxProperties": 32,
            "additionalProperties": {"type": "string", "maxLength": MAX_CARRIED_VALUE},
        },
    )
    """Details as string values (pod name, exit code, message, actor), each at most 4096 characters."""  # noqa: E501


class GeneratedArtifact(ApiModel):
    """An artifact the runner produced."""

    type: str = Field(min_length=1, max_length=63)
    """Kind of artifact, e.g. log, output, patch, history-archive."""
    location: str = Field(min_length=1, max_length=1024)
    """URI, e.g. s3://bucket/team-alpha/<session>/outputs/result.json."""
    size: int | None = Field(default=None, ge=0)
    """Size in bytes."""
    checksum: str | None = Field(default=None, max_length=80)
    """Checksum as algorithm:hex, e.g. sha256:..."""
    created_at: str
    """When it was written (RFC 3339)."""


class GeneratedArtifacts(ApiModel):
    """Artifacts the Session produced."""

    generated: list[GeneratedArtifact] = Field(
        default_factory=list, max_length=MAX_GENERATED_ARTIFACTS
    )
    """At most 100 per Session."""


class Workload(ApiModel):
    """The Kubernetes objects doing the work."""

    job_name: str | None = Field(default=None, max_length=63)
    """Name of the runner Job."""
    pod_name: str | None = Field(default=None, max_length=253)
    """Name of the runner Job's current Pod."""


def _grows(field: str, cast: str = "") -> str:
    """A CEL transition rule: ``field`` is not lower than before (absent counts as zero)."""
    zero = f"{cast}('0')" if cast else "0"

    def value(obj: str) -> str:
        read = f"{cast}({obj}.{field})" if cast else f"{obj}.{field}"
        return f"(has({obj}.{field}) ? {read} : {zero})"

    return f"{value('self')} >= {value('oldSelf')}"


class Usage(ApiModel):
    """What the Session consumed, as reported by its runner. It only grows: a runner (or
    anyone) lowering a figure is refused, by this rule and by the admission webhook."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    # Spend is what the namespace's budget is charged: never taken back.
                    "rule": " && ".join(
                        (_grows("inputTokens"), _grows("outputTokens"), _grows("cost", "double"))
                    ),
                    "message": "status.usage only grows: tokens and cost cannot be lowered",
                }
            ]
        }
    )

    input_tokens: int = Field(default=0, ge=0)
    """Model input tokens."""
    output_tokens: int = Field(default=0, ge=0)
    """Model output tokens."""
    cost: Money = "0"
    """Spend so far, in the NamespacePolicy's currency."""
    model: str | None = Field(default=None, max_length=128)
    """The model the runner last reported usage for, e.g. claude-sonnet-4-5."""


class HistoryArchive(ApiModel):
    """A run of history entries (fromSeq..toSeq) moved to the artifact store. Immutable."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "self == oldSelf",
                    "message": "status.historyArchives is append-only: a record cannot be changed",
                },
                {
                    "rule": "self.toSeq >= self.fromSeq && "
                    "self.count == self.toSeq - self.fromSeq + 1",
                    "message": "a history archive's count must be toSeq - fromSeq + 1",
                },
            ]
        }
    )

    from_seq: int = Field(ge=0, le=MAX_HISTORY_SEQ)
    """seq of the first archived entry."""
    to_seq: int = Field(ge=0, le=MAX_HISTORY_SEQ)
    """seq of the last archived entry."""
    count: int = Field(ge=1, le=MAX_HISTORY_ENTRIES)
    """How many entries the archive holds (toSeq - fromSeq + 1)."""
    location: str = Field(min_length=1, max_length=512)
    """URI of the archive object, e.g. s3://bucket/team-alpha/<session>/<uid>/history/0-499.json."""
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    """Lowercase hex SHA-256 of the archive object, to verify what is read back."""
    archived_at: str = Field(max_length=40)
    """When the entries were archived (RFC 3339)."""


# An atomic list: the API server tracks it as one field (its managedFields do not list
# every entry, as a map list's do) and its rules run once per write, not once per entry.
# The entry at index i has seq first + i (consecutive, so unique), and the append-only
# rule finds each old entry by its seq: together with the status rules below they say
# what the per-entry `self == oldSelf` of a map list said.
_HISTORY_SCHEMA_EXTRA: dict[str, Any] = {
    "x-kubernetes-list-type": "atomic",
    "x-kubernetes-validations": [
        {
            "rule": "self.all(i, e, e.seq == self[0].seq + i)",
            "message": "status.history entries must be in order with consecutive seq "
            "(0, 1, 2, ... after the archived ones)",
        },
        {
            # Most writes archive nothing: both lists then start at the same seq and the
            # old entries are the new list's first ones, compared by index without reading
            # a seq per entry (each field read costs the API server a schema lookup).
            "rule": "self.size() == 0 || oldSelf.size() == 0 || "
            "(self[0].seq == oldSelf[0].seq ? "
            "(self.size() >= oldSelf.size() && oldSelf.all(i, o, self[i] == o)) : "
            "oldSelf.all(o, o.seq < self[0].seq || "
            "(o.seq - self[0].seq < self.size() && self[o.seq - self[0].seq] == o)))",
            "message": "status.history is append-only: an existing entry cannot be changed",
        },
        {
            # On the list, not the status: run only when both lists are there (the status
            # rules refuse a dropped one), it reads two entries, not the status four times.
            "rule": "oldSelf.size() == 0 || "
            "(self.size() > 0 && self[self.size() - 1].seq >= oldSelf[oldSelf.size() - 1].seq)",
            "message": "status.history is append-only: entries cannot be removed from the end",
        },
        {
            # The schema's maxLength must admit the operator's carried list; every other
            # value is held to the smaller limit here.
            "rule": "self.all(e, !has(e.data) || e.data.all(k, "
            f"e.data[k].size() <= {MAX_HISTORY_VALUE} || "
            f"(k == '{CARRIED_DATA_KEY}' && e.event == 'HistoryArchived')))",
            "message": f"a history data value holds at most {MAX_HISTORY_VALUE} "
            f"characters (only a HistoryArchived entry's {CARRIED_DATA_KEY} may hold "
            f"up to {MAX_CARRIED_VALUE})",
        },
    ],
}

_ARCHIVES_SCHEMA_EXTRA: dict[str, Any] = {
    "x-kubernetes-list-type": "map",
    "x-kubernetes-list-map-keys": ["fromSeq"],
    "x-kubernetes-validations": [
        {
            "rule": "self.size() == 0 || (self[0].fromSeq == 0 && "
            "self.map(a, a.fromSeq).isSorted() && "
            "self.map(a, a.count).sum() == self[self.size() - 1].toSeq + 1)",
            "message": "status.historyArchives must cover seq 0, 1, 2, ... in order",
        },
        {
            "rule": "self.size() >= oldSelf.size()",
            "message": "status.historyArchives is append-only: records cannot be removed",
        },
    ],
}

# Rules across history and historyArchives (so on the status object). Together with the
# history's append-only rule and the per-item `self == oldSelf` of the archives they say:
# the new history is the old one minus a prefix that one appended archive covers exactly,
# plus entries at the end.
# Optional selection reads a field once where `has(x.f) ? x.f : []` reads it twice: the
# API server rebuilds the status schema's property map on every field read, and these
# rules run on every status write.
_ARCHIVES = "self.?historyArchives.orValue([])"
_OLD_ARCHIVES = "oldSelf.?historyArchives.orValue([])"
_HISTORY = "self.?history.orValue([])"
_OLD_HISTORY = "oldSelf.?history.orValue([])"
_STATUS_RULES: list[Any] = [
    {
        "rule": "!has(oldSelf.history) || has(self.history)",
        "message": "status.history is append-only: it cannot be removed",
    },
    {
        "rule": f"{_ARCHIVES}.size() == 0 ? ({_HISTORY}.size() == 0 || {_HISTORY}[0].seq == 0) : "
        f"({_HISTORY}.size() > 0 && "
        f"{_HISTORY}[0].seq == {_ARCHIVES}[{_ARCHIVES}.size() - 1].toSeq + 1)",
        "message": "status.history is append-only: entries cannot be removed unless an "
        "archive in status.historyArchives covers them (the first entry's seq must follow "
        "the last archive's toSeq)",
    },
    {
        # The list's own rule is not run when the list is dropped whole; this one is.
        "rule": f"{_ARCHIVES}.size() >= {_OLD_ARCHIVES}.size()",
        "message": "status.historyArchives is append-only: records cannot be removed",
    },
    {
        "rule": f"{_ARCHIVES}.size() <= {_OLD_ARCHIVES}.size() || "
        f"({_ARCHIVES}.size() == {_OLD_ARCHIVES}.size() + 1 && "
        f"{_ARCHIVES}[{_ARCHIVES}.size() - 1].fromSeq == ({_OLD_ARCHIVES}.size() == 0 ? 0 : "
        f"{_OLD_ARCHIVES}[{_OLD_ARCHIVES}.size() - 1].toSeq + 1) && "
        f"{_OLD_HISTORY}.size() > 0 && "
        f"{_ARCHIVES}[{_ARCHIVES}.size() - 1].toSeq <= "
        f"{_OLD_HISTORY}[{_OLD_HISTORY}.size() - 1].seq)",
        "message": "status.historyArchives grows by one record per write, starting where the "
        "previous one ended and covering only entries that were in status.history",
    },
]


# The archive object's key, as the operator writes it (common/store/keys.py
# history_archive_key): s3://<bucket>/[<prefix>/]<namespace>/<session>/<uid>/history/
# <fromSeq>-<toSeq>.json. CEL sees metadata.name but not the namespace or uid, so it checks
# the shape, the Session's own name and the record's own range.
HISTORY_ARCHIVE_LOCATION = (
    r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]/([A-Za-z0-9._-]+/)*"
    r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?/[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?/"
    r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/history/[0-9]+-[0-9]+[.]json$"
)
# The record a write appends, its location's path segments, and its "<from>-<to>" range.
# (CEL string concatenation with a number is too costly for the API server's estimate, so
# the range is compared as numbers.)
_NEW = "self.status.historyArchives[self.status.historyArchives.size() - 1]"
_PARTS = f"{_NEW}.location.split('/')"
_RANGE = f"{_PARTS}[{_PARTS}.size() - 1].split('.')[0].split('-')"

# Rules on the whole Session (the only level that sees a dropped status, and metadata.name).
SESSION_RULES: list[Any] = [
    {
        # Without it, removing /status makes every status-level rule moot (there is no
        # oldSelf to compare with), and a fabricated history is then accepted.
        "rule": "(!oldSelf.?status.?history.hasValue() || self.?status.?history.hasValue()) && "
        "(!oldSelf.?status.?historyArchives.hasValue() || "
        "self.?status.?historyArchives.hasValue())",
        "message": "status.history is append-only: status, status.history and "
        "status.historyArchives cannot be removed once written",
        "fieldPath": ".status",
    },
    {
        # Only the record a write appends: the older ones cannot change (their own rule).
        "rule": "self.?status.?historyArchives.orValue([]).size() == 0 || "
        "oldSelf.?status.?historyArchives.orValue([]).size() >= "
        "self.status.historyArchives.size() || "
        f"({_NEW}.location.matches('{HISTORY_ARCHIVE_LOCATION}') && "
        f"{_PARTS}[{_PARTS}.size() - 4] == self.metadata.name && "
        f"int({_RANGE}[0]) == {_NEW}.fromSeq && int({_RANGE}[1]) == {_NEW}.toSeq)",
        "message": "a new status.historyArchives record's location must be the Session's own "
        "archive key: s3://<bucket>/[<prefix>/]<namespace>/<session name>/<uid>/history/"
        "<fromSeq>-<toSeq>.json",
        "fieldPath": ".status.historyArchives",
    },
]


class SessionStatus(ApiModel):
    """What the operator observed. Written only by the operator and the Session's runner."""

    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": _STATUS_RULES})

    phase: Phase = Phase.PENDING
    """Pending, Running, Completed or Failed."""
    reason: str | None = Field(default=None, max_length=128)
    """Finer state in one CamelCase word, e.g. AwaitingApproval, Queued, UnknownFramework, Error."""
    message: str | None = Field(default=None, max_length=32768)
    """A human-readable explanation of the reason."""
    observed_generation: int | None = Field(default=None, ge=0)
    """The metadata.generation the operator last acted on."""
    conditions: list[Condition] = Field(
        default_factory=list,
        max_length=32,
        json_schema_extra={
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["type"],
        },
    )
    """Conditions per the Kubernetes API conventions."""
    history: list[HistoryEntry] = Field(
        default_factory=list,
        max_length=MAX_HISTORY_ENTRIES,
        json_schema_extra=_HISTORY_SCHEMA_EXTRA,
    )
    """Append-only record of what happened (enforced by CEL rules and the admission webhook). The newest entries: past 300 (by default) the operator moves the oldest to the artifact store (see historyArchives) and appends a HistoryArchived entry."""  # noqa: E501
    history_archives: list[HistoryArchive] = Field(
        default_factory=list,
        max_length=MAX_HISTORY_ARCHIVES,
        json_schema_extra=_ARCHIVES_SCHEMA_EXTRA,
    )
    """Runs of older history entries moved to the artifact store, in order from seq 0; append-only. The full trail is these archives followed by status.history."""  # noqa: E501
    artifacts: GeneratedArtifacts = Field(default_factory=GeneratedArtifacts)
    """What the Session produced."""
    workload: Workload = Field(default_factory=Workload)
    """The runner Job and Pod."""
    usage: Usage = Field(default_factory=Usage)
    """Tokens and spend reported by the runner."""
    start_time: str | None = None
    """When the runner started (RFC 3339)."""
    completion_time: str | None = None
    """When the Session reached Completed or Failed (RFC 3339)."""
    attempt: int | None = Field(default=None, ge=1, le=100)
    """The current attempt (1 for the first runner Job, 2 after one retry, ...)."""


class ObjectMeta(BaseModel):
    """The part of metadata the product reads; the API server owns the rest."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    name: str = ""
    namespace: str = ""
    uid: str = ""
    generation: int = 0
    resource_version: str = Field(default="", alias="resourceVersion")
    creation_timestamp: str | None = Field(default=None, alias="creationTimestamp")
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)


class Session(ApiModel):
    """A durable unit of agentic work: its trigger, framework, constraints and history."""

    model_config = ConfigDict(extra="ignore")

    api_version: Literal["ambient.ai/v1alpha1"] = "ambient.ai/v1alpha1"
    kind: Literal["Session"] = "Session"
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: SessionSpec
    status: SessionStatus = Field(default_factory=SessionStatus)


# --- NamespacePolicy ----------------------------------------------------------------------


class Budget(ApiModel):
    """The namespace's monthly spend limit."""

    monthly: Money
    """Most the namespace may spend per calendar month (UTC), e.g. '1000.00'."""
    currency: str = Field(default="USD", pattern=r"^[A-Z]{3}$")
    """ISO 4217 currency code."""


class ModelPolicy(ApiModel):
    """Which models Sessions in the namespace may use."""

    allowed: list[Name] = Field(default_factory=list, max_length=64)
    """Model names Sessions may ask for."""
    budget: Budget | None = None
    """Monthly spend limit; no limit when unset."""


class ToolPolicy(ApiModel):
    """Which tools agents in the namespace may use. Blocked wins over allowed."""

    allowed: list[Name] = Field(default_factory=list, max_length=128)
    """Tools Sessions may ask for."""
    blocked: list[Name] = Field(default_factory=list, max_length=128)
    """Tools no Session may use, even when listed as allowed."""


class ApprovalPolicy(ApiModel):
    """Whether Sessions need a person's approval before they run, and whose."""

    required: bool = False
    """When true, every Session in the namespace waits for approval; none can opt out."""
    approvers: list[str] = Field(default_factory=list, max_length=64)
    """Users or groups (as the API server authenticates them) who may approve."""


Duration = Annotated[str, Field(pattern=DURATION_PATTERN, max_length=6)]


class RetentionPolicy(ApiModel):
    """How long things are kept. Durations like 90d, 30d, 7y (h, d, w, y)."""

    sessions: Duration = "90d"
    """Finished Sessions are deleted this long after completion."""
    artifacts: Duration = "30d"
    """Artifacts are deleted from the store this long after creation."""
    audit_logs: Duration = "7y"
    """Audit records are kept this long."""
    deliveries: Duration = "30d"
    """Stored requests of refused or failed ingress deliveries (kept so an admin can replay
    them) are deleted this long after they arrived. The deliveries' records are audit
    records, kept as long as auditLogs."""


class NotificationEvent(StrEnum):
    """Events a notification webhook can subscribe to."""

    COMPLETED = "session.completed"
    FAILED = "session.failed"
    AWAITING_APPROVAL = "session.awaiting_approval"
    QUEUED = "session.queued"


_INTERNAL_HOST_MESSAGE = (
    "url must be an https URL whose host is a host name or a public address: loopback, "
    "private, link-local (169.254.169.254), CGNAT, multicast and reserved addresses are "
    "refused (an internal receiver the cluster admin allow-listed is named by host name)"
)

_URL_SHAPE_MESSAGE = (
    "url must be an https URL with a host: https://host[:port][/path], no credentials, "
    "an IPv6 address in brackets"
)
_URL_RULES: list[Any] = list(addresses.cel_rules(_URL_SHAPE_MESSAGE, _INTERNAL_HOST_MESSAGE))


class NotificationWebhook(ApiModel):
    """An HTTPS endpoint that receives Session events."""

    # Admission refuses what is plainly internal; the operator checks every address a host
    # name resolves to before it connects (ambient.operator.notify.egress).
    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": _URL_RULES})

    url: str = Field(pattern=r"^https://", max_length=2048)
    """HTTPS URL whose host is a host name or a public address (internal addresses are refused); Slack incoming-webhook URLs get a Slack-formatted message."""  # noqa: E501
    events: list[NotificationEvent] = Field(min_length=1, max_length=8)
    """Which events to send."""

    @field_validator("url")
    @classmethod
    def _host_is_not_internal(cls, url: str) -> str:
        try:
            host = urlsplit(url).hostname
        except ValueError:
            host = None
        if not host or not re.fullmatch(addresses.URL_SHAPE, url):
            raise ValueError(_URL_SHAPE_MESSAGE)
        why = addresses.literal_host_refusal(host)
        if why:
            raise ValueError(f"{_INTERNAL_HOST_MESSAGE}; {why}")
        return url


class NotificationPolicy(ApiModel):
    """Where Session events are sent."""

    webhooks: list[NotificationWebhook] = Field(default_factory=list, max_length=16)
    """Endpoints and the events each receives."""
    signing_secret_ref: SecretRef | None = None
    """Secret whose data key `notifications` signs requests (HMAC-SHA256 header)."""


# A string or a list cannot be a structural schema, and CEL cannot type such a field, so
# the API server only preserves it; the admission webhook checks the shape and the hashes.
_KEY_HASHES_EXTRA: dict[str, Any] = {"x-kubernetes-preserve-unknown-fields": True}


class SecretRef(ApiModel):
    """A Secret in the same namespace."""

    name: ObjectName
    """Name of the Secret in the policy's own namespace (a DNS-1123 subdomain)."""


class ApiKeys(ApiModel):
    """SHA-256 hashes (lowercase hex) of the ingress API keys, per source."""

    github: str | list[str] | None = Field(default=None, json_schema_extra=_KEY_HASHES_EXTRA)
    """Hash of the GitHub key, or a list of hashes during rotation."""
    jira: str | list[str] | None = Field(default=None, json_schema_extra=_KEY_HASHES_EXTRA)
    """Hash of the Jira key, or a list of hashes during rotation."""
    slack: str | list[str] | None = Field(default=None, json_schema_extra=_KEY_HASHES_EXTRA)
    """Hash of the Slack key, or a list of hashes during rotation."""
    alertmanager: str | list[str] | None = Field(default=None, json_schema_extra=_KEY_HASHES_EXTRA)
    """Hash of the Alertmanager key, or a list of hashes during rotation. Alertmanager signs nothing: this key is its only credential (send it as http_config.authorization credentials)."""  # noqa: E501
    generic: str | list[str] | None = Field(default=None, json_schema_extra=_KEY_HASHES_EXTRA)
    """Hash of the generic (Standard Webhooks) key, or a list of hashes during rotation."""


KEY_PREFIX_PATTERN = r"^amb_[a-z]+_[A-Za-z0-9_-]{4}$"
"""A key's visible prefix: ``amb_<source>_`` and its first four characters, so a leaked key
is recognisable (as GitHub's own tokens are) and can be matched to its entry."""


class ApiKey(ApiModel):
    """One ingress key: its hash (the key itself is shown once, never stored), where it may
    be used, and until when."""

    source: str = Field(pattern=r"^(github|jira|slack|alertmanager|generic)$")
    """The source the key is for: github, jira, slack, alertmanager or generic."""
    hash: str = Field(pattern=r"^[0-9a-f]{64}$")
    """SHA-256 of the key (lowercase hex)."""
    prefix: str = Field(pattern=KEY_PREFIX_PATTERN)
    """The key's visible beginning (amb_<source>_ and four characters), to recognise it."""
    created_at: str = Field(max_length=40)
    """When it was created (RFC 3339)."""
    created_by: str = Field(default="", max_length=256)
    """Who created it."""
    expires_at: str | None = Field(default=None, max_length=40)
    """When the ingress stops taking it (RFC 3339); never when unset."""
    description: str = Field(default="", max_length=256)
    """What the key is for (which sender holds it)."""


class RevokedKey(ApiModel):
    """A key that no longer works, kept so an admin sees when and by whom it went."""

    source: str = Field(max_length=32)
    """The source it was for."""
    prefix: str = Field(default="", max_length=32)
    """Its visible beginning (empty for a key made before prefixes)."""
    hash: str = Field(pattern=r"^[0-9a-f]{64}$")
    """Its SHA-256."""
    revoked_at: str = Field(max_length=40)
    """When it was revoked (RFC 3339)."""
    revoked_by: str = Field(default="", max_length=256)
    """Who revoked it."""


class WebhookAuth(ApiModel):
    """How the ingress recognises callers for this namespace."""

    api_keys: ApiKeys = Field(default_factory=ApiKeys)
    """Key hashes per source; the key alone decides the namespace."""
    keys: list[ApiKey] = Field(default_factory=list, max_length=64)
    """Keys with a visible prefix and an optional expiry (what `ambient keys create` writes); used beside apiKeys."""  # noqa: E501
    revoked_keys: list[RevokedKey] = Field(default_factory=list, max_length=256)
    """Keys revoked, newest last: when and by whom. They authenticate nothing."""
    signing_secret_ref: SecretRef | None = None
    """Secret with data keys github, jira, slack holding each source's signing secret, and generic holding the Standard Webhooks secret (whsec_<base64>)."""  # noqa: E501


class SessionDefaults(ApiModel):
    """What ingress-created Sessions get: their framework and the constraints they run under."""

    framework: Framework = Field(default_factory=lambda: Framework(type="claude-code"))
    """Runner framework of Sessions the ingress creates; claude-code at latest when unset."""
    policy: SessionPolicy = Field(default_factory=SessionPolicy)
    """Constraints of Sessions the ingress creates; they must comply with this policy."""
    timeout_seconds: int | None = Field(default=None, ge=1, le=7 * 24 * 3600)
    """Most seconds the runner may run; the registry default when unset."""


class IngressSourcePolicy(ApiModel):
    """Which of one source's events start Sessions, and whether unsigned requests are taken."""

    events: list[Annotated[str, Field(min_length=1, max_length=128)]] | None = Field(
        default=None, max_length=64
    )
    """Events (with action) that start Sessions, e.g. pull_request.opened; 'issues.*' matches every action; the built-in defaults when unset, none when empty."""  # noqa: E501
    allow_unsigned: bool = False
    """Accept requests without a signature when no signing secret is set. Off: such a source is refused."""  # noqa: E501


class AlertmanagerIngressPolicy(ApiModel):
    """Which Alertmanager notifications start Sessions. Alertmanager signs nothing, so there is no allowUnsigned: the key alone authenticates."""  # noqa: E501

    # An enum, so a misspelt status is refused when the policy is written, not ignored forever.
    events: list[Literal["firing", "resolved", "*"]] | None = Field(default=None, max_length=3)
    """Statuses that start Sessions: firing, resolved, or * for both; firing when unset, none when empty."""  # noqa: E501


class GitHubIngressPolicy(IngressSourcePolicy):
    """GitHub events, plus how a comment addresses the bot."""

    bot_name: str | None = Field(
        default=None, max_length=64, pattern=r"^[A-Za-z0-9][-A-Za-z0-9_\[\]]*$"
    )
    """A comment mentioning @<botName> starts a Session."""
    command: str = Field(default="/ambient", min_length=1, max_length=64)
    """A comment starting with this command starts a Session."""


MAX_ROUTE_FILTER = 1024
"""The longest route filter (CEL): a short expression, so no filter can make a delivery slow."""
MAX_ROUTE_TEMPLATE = 4096
"""The longest route template (the task text or a config value)."""
ROUTE_SOURCES = ("github", "jira", "slack", "alertmanager", "generic")
"""The sources a route can name."""


class IngressRoute(ApiModel):
    """One route of spec.ingress.routes: which deliveries it takes and the Session they start. Routes are tried in order; the first whose source, events and filter match decides."""  # noqa: E501

    name: str | None = Field(default=None, max_length=63, pattern=DNS_LABEL_PATTERN)
    """A name for the delivery log and the Session's label (the route's index when unset)."""
    source: Literal["github", "jira", "slack", "alertmanager", "generic"]
    """The source whose deliveries this route takes."""
    events: list[Annotated[str, Field(min_length=1, max_length=128)]] = Field(
        min_length=1, max_length=64
    )
    """Events (with action) the route takes, e.g. pull_request.opened; 'issues.*' matches every action, '*' every event."""  # noqa: E501
    filter: str | None = Field(default=None, min_length=1, max_length=MAX_ROUTE_FILTER)
    """A CEL expression that must be true for the route to match, over body (the payload), headers (lower-case names), event and source, e.g. body.pull_request.base.ref == "main". Checked when the policy is written; an error at delivery means no match."""  # noqa: E501
    framework: Framework | None = None
    """Runner framework and its config for this route's Sessions; spec.defaults.framework when unset."""  # noqa: E501
    policy: SessionPolicy | None = None
    """Constraints of this route's Sessions; spec.defaults.policy when unset."""
    timeout_seconds: int | None = Field(default=None, ge=1, le=7 * 24 * 3600)
    """Most seconds the runner may run; spec.defaults.timeoutSeconds when unset."""
    task: str | None = Field(default=None, min_length=1, max_length=MAX_ROUTE_TEMPLATE)
    """A Jinja template (sandboxed) of the task, rendered into framework.config.prompt before the Session is created, over body, headers, event and source, e.g. 'Review {{ body.pull_request.html_url }}'; the built-in task of the event when unset."""  # noqa: E501
    config: dict[str, Annotated[str, Field(max_length=MAX_ROUTE_TEMPLATE)]] = Field(
        default_factory=dict, max_length=16
    )
    """framework.config values rendered from templates like task's, by key (not prompt: that is task)."""  # noqa: E501
    allow_untrusted_senders: bool = False
    """GitHub: also take senders whose author_association is not OWNER, MEMBER or COLLABORATOR (ignored by default)."""  # noqa: E501
    allow_forks: bool = False
    """GitHub: also take pull requests from forks (ignored by default)."""

    @field_validator("config")
    @classmethod
    def _config_keys(cls, value: dict[str, str]) -> dict[str, str]:
        for key in value:
            if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]{0,62}", key) or key == "prompt":
                raise ValueError(
                    f"config key {key!r} must be an identifier (letters, digits, _) other "
                    "than prompt (the task sets the prompt)"
                )
        return value


class IngressPolicy(ApiModel):
    """Per-source event selection for the webhook ingress."""

    github: GitHubIngressPolicy = Field(default_factory=GitHubIngressPolicy)
    """GitHub: default pull_request opened/synchronize/reopened, issues opened/labeled, comments addressing the bot."""  # noqa: E501
    jira: IngressSourcePolicy = Field(default_factory=IngressSourcePolicy)
    """Jira: default jira:issue_created, jira:issue_updated, comment_created."""
    alertmanager: AlertmanagerIngressPolicy = Field(default_factory=AlertmanagerIngressPolicy)
    """Alertmanager (webhook payload version 4): events firing and resolved; default firing."""
    generic: IngressSourcePolicy = Field(default_factory=IngressSourcePolicy)
    """Generic Standard Webhooks senders: the event is the body's type field; default every event (*)."""  # noqa: E501
    slack: IngressSourcePolicy = Field(default_factory=IngressSourcePolicy)
    """Slack: default app_mention, message.im, slash_command, interactive.*."""
    routes: list[IngressRoute] = Field(default_factory=list, max_length=32)
    """Ordered routes from deliveries to Sessions; the first that matches decides and a delivery no route matches is ignored. Unset: one implicit route per source from spec.defaults and the events above."""  # noqa: E501


class ViolationAction(StrEnum):
    """What happens to a running or queued Session that a changed policy no longer allows."""

    STOP = "stop"
    FLAG = "flag"


class RetryPolicy(ApiModel):
    """When a failed attempt is retried as a new runner Job."""

    limit: int = Field(default=0, ge=0, le=10)
    """Most retries per Session (0: none). Evictions, lost nodes, OOM kills and image pulls stuck past the grace period are retryable."""  # noqa: E501
    retry_on_exit_codes: list[int] = Field(default_factory=list, max_length=32)
    """Runner exit codes that are retried too; a runner's own non-zero exit is otherwise final."""
    image_pull_grace_seconds: int = Field(default=300, ge=0, le=86_400)
    """How long a pod may wait on an image pull (ErrImagePull, ImagePullBackOff) before the attempt counts as failed."""  # noqa: E501


class LifecyclePolicy(ApiModel):
    """Timeouts, retries and what a policy change does to Sessions already admitted."""

    default_timeout_seconds: int | None = Field(default=None, ge=1, le=7 * 24 * 3600)
    """Timeout for Sessions that set no spec.timeoutSeconds; the runner registry default when unset."""  # noqa: E501
    max_timeout_seconds: int | None = Field(default=None, ge=1, le=7 * 24 * 3600)
    """Upper bound on any Session's timeout; a longer spec.timeoutSeconds is cut to it."""
    approval_timeout_seconds: int | None = Field(default=None, ge=1, le=30 * 24 * 3600)
    """How long a Session may wait for approval before it ends Failed, reason ApprovalExpired; no limit when unset."""  # noqa: E501
    retries: RetryPolicy = Field(default_factory=RetryPolicy)
    """Retries of failed attempts."""
    on_violation: ViolationAction = ViolationAction.STOP
    """When the policy changes and a running or queued Session no longer complies: stop ends it Failed (reason PolicyViolation); flag sets condition PolicyCompliant=False and lets it run."""  # noqa: E501


class ReplyPolicy(ApiModel):
    """Replies to where an event came from (a GitHub comment, a Jira comment, a Slack thread reply), with the credentials of Secret ambient-source-credentials."""  # noqa: E501

    on_start: bool = False
    """Reply when the Session starts running."""
    on_end: bool = True
    """Reply when the Session ends (Completed or Failed), with the runner's summary or the failure."""  # noqa: E501
    github_check_run: bool = False
    """Also report on a pull request's head commit as a check run named ambient (needs a GitHub App)."""  # noqa: E501


class NamespacePolicySpec(ApiModel):
    """Constraints and access controls for every Session in the namespace."""

    models: ModelPolicy = Field(default_factory=ModelPolicy)
    """Allowed models and the monthly budget."""
    tools: ToolPolicy = Field(default_factory=ToolPolicy)
    """Allowed and blocked tools."""
    approval: ApprovalPolicy = Field(default_factory=ApprovalPolicy)
    """Approval requirement and approvers."""
    retention: RetentionPolicy = Field(default_factory=RetentionPolicy)
    """How long Sessions, artifacts and audit logs are kept."""
    notifications: NotificationPolicy = Field(default_factory=NotificationPolicy)
    """Where Session events are sent."""
    webhook_auth: WebhookAuth = Field(default_factory=WebhookAuth)
    """Ingress API keys and signing secrets."""
    max_concurrent_sessions: int = Field(default=50, ge=1, le=10_000)
    """Most Sessions running at once in the namespace."""
    defaults: SessionDefaults = Field(default_factory=SessionDefaults)
    """Framework and constraints of Sessions the webhook ingress creates."""
    ingress: IngressPolicy = Field(default_factory=IngressPolicy)
    """Which GitHub, Jira, Slack, Alertmanager and generic events start Sessions; whether unsigned requests are taken."""  # noqa: E501
    lifecycle: LifecyclePolicy = Field(default_factory=LifecyclePolicy)
    """Timeouts, retries and what policy changes do to admitted Sessions."""
    replies: ReplyPolicy = Field(default_factory=ReplyPolicy)
    """When the outcome of a Session started by GitHub, Jira or Slack is replied to its source."""


MAX_LEDGER_ENTRIES = 10_000


class LedgerEntry(ApiModel):
    """What one Session of the month is charged: the most it ever reported, or while it
    is unfinished its budget if that is more (the budget is reserved while it runs)."""

    uid: str = Field(min_length=1, max_length=64)
    """The Session's metadata.uid (a recreated Session of the same name is another)."""
    charge: Money
    """The amount charged, in the policy's currency."""


class NamespacePolicyStatus(ApiModel):
    """Roll-up of the namespace's usage, kept by the operator."""

    month: str | None = Field(default=None, pattern=r"^[0-9]{4}-[0-9]{2}$")
    """The month (UTC, YYYY-MM) the spend figure is for."""
    month_to_date_spend: Money = "0"
    """Spend of the namespace's Sessions this month: the sum of the ledger."""
    ledger: list[LedgerEntry] = Field(default_factory=list, max_length=MAX_LEDGER_ENTRIES)
    """Every Session created this month and its charge. Durable: deleting a Session does not take its charge back, and a charge never goes down."""  # noqa: E501
    running_sessions: int = Field(default=0, ge=0)
    """Sessions running now."""
    observed_generation: int | None = Field(default=None, ge=0)
    """The metadata.generation the operator last acted on."""
    conditions: list[Condition] = Field(
        default_factory=list,
        max_length=32,
        json_schema_extra={
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["type"],
        },
    )
    """Conditions per the Kubernetes API conventions."""
    keys_last_used: dict[str, str] = Field(default_factory=dict, max_length=128)
    """When each key was last used, by the first 16 hex characters of its hash (RFC 3339; the ingress records it at most once an hour per key)."""  # noqa: E501


class NamespacePolicy(ApiModel):
    """The constraints a namespace's Sessions must meet; one per namespace."""

    model_config = ConfigDict(extra="ignore")

    api_version: Literal["ambient.ai/v1alpha1"] = "ambient.ai/v1alpha1"
    kind: Literal["NamespacePolicy"] = "NamespacePolicy"
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: NamespacePolicySpec = Field(default_factory=NamespacePolicySpec)
    status: NamespacePolicyStatus = Field(default_factory=NamespacePolicyStatus)
