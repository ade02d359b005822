"""Pure parts of the runner contract: context, history entries, artifacts, usage, budget.

No I/O here, so the rules are unit-tested exactly; ``status_client`` and ``artifacts``
do the API and storage calls.
"""

from __future__ import annotations

import json
from collections.abc import MutableMapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from ambient.crds import times
from ambient.crds.digests import sha256_hex
from ambient.crds.history import next_seq_raw
from ambient.crds.models import (
    MAX_GENERATED_ARTIFACTS,
    MAX_HISTORY_ENTRIES,
    MAX_HISTORY_VALUE,
    GeneratedArtifact,
    HistoryEntry,
    money,
)

# The context file: the operator's builders write it (runner_context, mounted from a
# ConfigMap), the runner library reads it (Context.parse). Both sides use these names.
CONTEXT_SCHEMA = "ambient.ai/runner-context/v1"
"""The context file's ``schema``: a runner refuses a context of another version."""
CONTEXT_DIR = "/var/run/ambient"
"""Where the context is mounted in the runner's container."""
CONTEXT_FILE = "session.json"
"""The context file's name in CONTEXT_DIR (and its key in the context ConfigMap)."""
CONTEXT_PATH = f"{CONTEXT_DIR}/{CONTEXT_FILE}"
CONTEXT_ENV = "AMBIENT_CONTEXT_FILE"
"""The environment variable that names the context file (CONTEXT_PATH in a Job)."""
CONTEXT_SHA256_ENV = "AMBIENT_CONTEXT_SHA256"
"""The SHA-256 (hex) of the context file the operator wrote, set in the Job (immutable):
a runner refuses a context file that differs, e.g. a context ConfigMap someone edited."""
ARTIFACTS_MOUNT = f"{CONTEXT_DIR}/artifacts"
"""Where a pvc artifact store is mounted (AMBIENT_PVC_MOUNT overrides it locally)."""
ENTRY_PREFIX = "runner:"
"""Runner history ids start with this, so they never collide with the operator's ids."""

# Reasons in the termination message the operator turns into status.reason.
BUDGET_EXCEEDED = "BudgetExceeded"
RUNNER_ERROR = "RunnerError"
EXIT_BUDGET = 3
"""Exit code of a runner stopped by its budget (any non-zero fails the Job)."""


class ContractError(Exception):
    """The runner was asked to do something the contract forbids; nothing was written."""


class HistoryFullError(ContractError):
    """The history window is at its cap until the operator archives older entries: the
    append is retried (StatusClient.update waits), never dropped."""


class PayloadError(ContractError):
    """The stored payload does not match its reference (size or sha256)."""


class ArtifactCapError(ContractError):
    """The Session already lists the most artifacts it may (the spec's 100)."""


class BudgetExceededError(ContractError):
    """The Session's spend reached its budget; the runner must stop."""


def context_document(
    *,
    name: str,
    namespace: str,
    uid: str,
    job_name: str,
    trigger: dict[str, Any],
    framework: str,
    version: str,
    config: dict[str, Any],
    policy: dict[str, Any],
    artifacts: dict[str, Any],
    timeout_seconds: int,
    blocked_tools: list[str] | None = None,
    pricing: dict[str, dict[str, str]] | None = None,
) -> dict[str, Any]:
    """The context file's content, as the operator writes it and ``Context`` reads it.

    ``blocked_tools`` are the NamespacePolicy's (policy.toolConstraints.blocked: a runner
    refuses them even when the Session allows them); ``pricing`` is the cluster admin's
    price table for this framework version (the runner registry), the only price a runner
    without its framework's own accounting may use. Neither comes from the Session."""
    policy = dict(policy)
    if blocked_tools:
        tools = dict(policy.get("toolConstraints") or {})
        tools["blocked"] = sorted(set(blocked_tools))
        policy["toolConstraints"] = tools
    document = {
        "schema": CONTEXT_SCHEMA,
        "session": {"name": name, "namespace": namespace, "uid": uid, "jobName": job_name},
        "trigger": trigger,
        "framework": {"type": framework, "version": version, "config": config},
        "policy": policy,
        "artifacts": artifacts,
        "timeoutSeconds": timeout_seconds,
    }
    if pricing:
        document["pricing"] = pricing
    return document


@dataclass(frozen=True)
class Context:
    """The mounted context file, as ``context_document`` lays it out."""

    raw: dict[str, Any]

    @classmethod
    def parse(cls, text: str) -> Context:
        """Read the context file's JSON; a wrong schema is refused, not guessed."""
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ContractError(f"the context file is not JSON: {exc}") from exc
        if not isinstance(raw, dict) or raw.get("schema") != CONTEXT_SCHEMA:
            raise ContractError(
                f"the context file's schema must be {CONTEXT_SCHEMA!r}; "
                "is this runner image older than the operator?"
            )
        return cls(raw)

    @property
    def name(self) -> str:
        return str(self.raw["session"]["name"])

    @property
    def namespace(self) -> str:
        return str(self.raw["session"]["namespace"])

    @property
    def job_name(self) -> str:
        return str(self.raw["session"].get("jobName") or "job")

    @property
    def trigger(self) -> dict[str, Any]:
        return dict(self.raw.get("trigger") or {})

    @property
    def payload_ref(self) -> dict[str, Any] | None:
        """trigger.payloadRef {location, size, sha256} when the payload is in the store."""
        ref = self.trigger.get("payloadRef")
        return dict(ref) if ref else None

    @property
    def config(self) -> dict[str, Any]:
        return dict(self.raw.get("framework", {}).get("config") or {})

    @property
    def allowed_models(self) -> list[str]:
        return list(self._policy("modelConstraints").get("allowed") or [])

    @property
    def allowed_tools(self) -> list[str]:
        return list(self._policy("toolConstraints").get("allowed") or [])

    @property
    def blocked_tools(self) -> list[str]:
        """The namespace's blocked tools, which the operator adds (never the Session)."""
        return list(self._policy("toolConstraints").get("blocked") or [])

    @property
    def pricing(self) -> dict[str, dict[str, str]]:
        """The cluster admin's price table: model → {inputPerMTok, outputPerMTok}."""
        return dict(self.raw.get("pricing") or {})

    @property
    def budget(self) -> Decimal | None:
        value = self._policy("modelConstraints").get("budget")
        return money(str(value)) if value is not None else None

    @property
    def storage(self) -> dict[str, str]:
        storage = self.raw.get("artifacts", {}).get("storage") or {}
        return {
            "type": str(storage.get("type", "s3")),
            "location": str(storage.get("location", "")),
        }

    def _policy(self, key: str) -> dict[str, Any]:
        return dict(self.raw.get("policy", {}).get(key) or {})


def now_rfc3339(moment: datetime | None = None) -> str:
    """Seconds precision in UTC, as the operator writes timestamps (crds/times.py)."""
    return times.rfc3339(moment or datetime.now(UTC))


def artifact_key(prefix: str, namespace: str, session: str, name: str) -> str:
    """<prefix>/<namespace>/<session>/<name>: every Session's artifacts under its own path.

    The one artifact key layout (common/store/keys.py lists it with every other key; it is
    defined here because the runner library cannot import ``common``)."""
    parts = [p for p in (prefix.strip("/"), namespace, session, name) if p]
    return "/".join(parts)


def append_history(
    status: dict[str, Any], entry_id: str, event: str, data: dict[str, str], timestamp: str
) -> bool:
    """Append a runner entry to a status dict in place; False when the id is already there.

    The id is prefixed with ``runner:`` and seq is the next position, as the CRD's CEL
    rules require. Idempotent: a retried append after a conflict adds nothing twice.
    """
    full_id = entry_id if entry_id.startswith(ENTRY_PREFIX) else ENTRY_PREFIX + entry_id
    history = status.setdefault("history", [])
    if any(e.get("id") == full_id for e in history):
        return False
    if len(history) >= MAX_HISTORY_ENTRIES:
        raise HistoryFullError(
            f"the Session's history holds {MAX_HISTORY_ENTRIES} entries; the operator "
            "archives the oldest to the artifact store before more can be appended"
        )
    entry = HistoryEntry(
        seq=next_seq_raw(status),
        id=full_id,
        timestamp=timestamp,
        event=event,
        # The CRD refuses longer values, and with them the whole write: cut them instead.
        data={k: str(v)[:MAX_HISTORY_VALUE] for k, v in data.items() if v != ""},
    )
    history.append(entry.model_dump(mode="json", by_alias=True))
    return True


def verify_payload(body: bytes, ref: dict[str, Any]) -> dict[str, Any]:
    """The payload a payloadRef names, checked: size and sha256 must match, and it must
    be a JSON object. Anything else is refused, never half-used."""
    if len(body) != int(ref.get("size", -1)):
        raise PayloadError(
            f"the payload at {ref.get('location')} has {len(body)} bytes, not {ref.get('size')}"
        )
    digest = sha256_hex(body)
    if digest != ref.get("sha256"):
        raise PayloadError(
            f"the payload at {ref.get('location')} has sha256 {digest}, not {ref.get('sha256')}"
        )
    try:
        payload = json.loads(body)
    except ValueError as exc:
        raise PayloadError(f"the payload at {ref.get('location')} is not JSON: {exc}") from exc
    if not isinstance(payload, dict):
        raise PayloadError(f"the payload at {ref.get('location')} is not a JSON object")
    return payload


def add_artifact(status: dict[str, Any], artifact: GeneratedArtifact) -> bool:
    """Record an artifact in a status dict in place; the 101st is refused.

    The same location twice is one artifact (an upload retried after a conflict).
    """
    generated = status.setdefault("artifacts", {}).setdefault("generated", [])
    if any(a.get("location") == artifact.location for a in generated):
        return False
    if len(generated) >= MAX_GENERATED_ARTIFACTS:
        raise ArtifactCapError(
            f"the Session already lists {MAX_GENERATED_ARTIFACTS} artifacts (the most a "
            f"Session may keep); {artifact.location} was not recorded. Bundle outputs into "
            "an archive or fewer files."
        )
    generated.append(artifact.model_dump(mode="json", by_alias=True, exclude_none=True))
    return True


def cents(amount: Decimal) -> str:
    """Money as the API stores it: at most two decimals, rounded half up."""
    return str(amount.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))


def add_usage(
    status: dict[str, Any], model: str, input_tokens: int, output_tokens: int, cost: Decimal
) -> Decimal:
    """Add to status.usage in place; return the new total cost."""
    if input_tokens < 0 or output_tokens < 0 or cost < 0:
        raise ContractError("usage cannot be negative")
    usage = status.setdefault("usage", {})
    usage["inputTokens"] = int(usage.get("inputTokens", 0)) + input_tokens
    usage["outputTokens"] = int(usage.get("outputTokens", 0)) + output_tokens
    total = money(str(usage.get("cost", "0"))) + cost
    usage["cost"] = cents(total)
    if model:
        usage["model"] = model
    return total


DEFAULT_ENV_PREFIX = "AMBIENT_DEFAULT_"
"""The cluster default model credentials (operator setting model_credentials_default_secret)
reach the runner as AMBIENT_DEFAULT_<variable>."""


def apply_default_credentials(env: MutableMapping[str, str]) -> None:
    """Fill each model credential the namespace's Secret left unset from the cluster
    default, then drop the AMBIENT_DEFAULT_* copies (in place)."""
    for name in [k for k in env if k.startswith(DEFAULT_ENV_PREFIX)]:
        value = env.pop(name)
        target = name.removeprefix(DEFAULT_ENV_PREFIX)
        if value and not env.get(target):
            env[target] = value


MILLION = Decimal(1_000_000)


def price(
    pricing: dict[str, dict[str, str]], model: str, input_tokens: int, output_tokens: int
) -> Decimal:
    """The cost of tokens by the cluster admin's price table (context ``pricing``, from the
    runner registry); a model the table does not list is refused, never priced at 0.
    framework.config is never read here: a Session's author cannot set their own price."""
    entry = pricing.get(model)
    if entry is None:
        raise ContractError(
            f"the runner registry has no price for model {model!r}; the cluster admin sets "
            "one under this framework version's pricing"
        )
    return (
        Decimal(str(entry.get("inputPerMTok", "0"))) * input_tokens
        + Decimal(str(entry.get("outputPerMTok", "0"))) * output_tokens
    ) / MILLION


def budget_left(budget: Decimal | None, spent: Decimal) -> Decimal | None:
    """What may still be spent; None when there is no budget. Never negative."""
    if budget is None:
        return None
    return max(budget - spent, Decimal(0))


def over_budget(budget: Decimal | None, spent: Decimal) -> bool:
    """Spent reached the budget (a budget of 0 allows nothing)."""
    return budget is not None and spent >= budget


def termination_message(reason: str, message: str, **details: str) -> str:
    """The JSON a runner writes to /dev/termination-log (read by the operator).

    Kept under Kubernetes' 4096-byte limit for termination messages.
    """
    body: dict[str, Any] = {"reason": reason, "message": message[:2000]}
    if details:
        body["details"] = {k: v[:500] for k, v in details.items()}
    return json.dumps(body, sort_keys=True)[:4096]
