"""The Runner object runner authors use: context, history, artifacts, usage, the end."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any, NoReturn

from ambient.crds.digests import sha256_hex
from ambient.crds.models import MAX_GENERATED_ARTIFACTS, GeneratedArtifact
from ambient.runners.sdk import contract
from ambient.runners.sdk.artifacts import ExternalStore, Store, open_store, read_s3
from ambient.runners.sdk.contract import BudgetExceededError, Context
from ambient.runners.sdk.status_client import Connection, StatusClient

TERMINATION_LOG = "/dev/termination-log"

log = logging.getLogger("ambient.runner")


class Runner:
    """One Session's runner. Every report is written to the Session's status at once."""

    def __init__(
        self, context: Context, client: StatusClient, termination_log: Path | None = None
    ) -> None:
        self.context = context
        self.client = client
        self.termination_log = termination_log or Path(
            os.environ.get("AMBIENT_TERMINATION_LOG", TERMINATION_LOG)
        )
        self._store: Store | None = None
        self._step = 0

    @classmethod
    def from_env(cls) -> Runner:
        """The runner as a pod starts it: context file and API access from the environment."""
        path = Path(os.environ.get(contract.CONTEXT_ENV, contract.CONTEXT_PATH))
        text = path.read_text()
        expected = os.environ.get(contract.CONTEXT_SHA256_ENV)
        if expected and sha256_hex(text.encode()) != expected:
            raise ValueError(
                f"the context file {path} is not the one the operator wrote (its SHA-256 "
                f"differs from {contract.CONTEXT_SHA256_ENV}); refusing to run it"
            )
        context = Context.parse(text)
        client = StatusClient(Connection.from_env(), context.namespace, context.name)
        return cls(context, client)

    def _id(self, key: str) -> str:
        """Ids carry the Job's name: a retry in a new Job appends its own entries instead
        of being taken for the earlier attempt's."""
        return f"{self.context.job_name}/{key}"[:120]

    @property
    def store(self) -> Store:
        if self._store is None:
            self._store = open_store(
                self.context.storage, self.context.namespace, self.context.name
            )
        return self._store

    def payload(self) -> dict[str, Any]:
        """The trigger's payload: inline, or read from the store when the ingress kept it
        there (trigger.payloadRef), with its size and sha256 checked."""
        ref = self.context.payload_ref
        if ref is None:
            return dict(self.context.trigger.get("payload") or {})
        return contract.verify_payload(read_s3(str(ref.get("location", ""))), ref)

    def history(self, event: str, data: dict[str, str] | None = None, key: str = "") -> None:
        """Append a progress entry (id ``runner:<key>``; a step counter when no key)."""
        self._step += 1
        entry_id = self._id(key or f"step-{self._step}-{event}")
        stamp = contract.now_rfc3339()
        self.client.update(lambda s: contract.append_history(s, entry_id, event, data or {}, stamp))
        log.info("%s %s", event, " ".join(f"{k}={v}" for k, v in (data or {}).items())[:300])

    def artifact(self, name: str, path: Path, kind: str = "output") -> GeneratedArtifact:
        """Store a file and record it; refused (nothing stored) past the 100-artifact cap."""
        self._check_room()
        artifact = self.store.put(name, path, kind)
        self._record(artifact)
        return artifact

    def reference(self, location: str, kind: str = "output") -> GeneratedArtifact:
        """Record an external artifact by reference."""
        artifact = ExternalStore("").reference(location, kind)
        self._record(artifact)
        return artifact

    def _check_room(self) -> None:
        generated = (self.client.get().get("status") or {}).get("artifacts", {}).get(
            "generated"
        ) or []
        if len(generated) >= MAX_GENERATED_ARTIFACTS:
            raise contract.ArtifactCapError(
                f"the Session already lists {MAX_GENERATED_ARTIFACTS} artifacts "
                "(the most a Session may keep); nothing was stored. Bundle outputs into an "
                "archive or fewer files."
            )

    def _record(self, artifact: GeneratedArtifact) -> None:
        def change(status: dict[str, Any]) -> None:
            if contract.add_artifact(status, artifact):
                contract.append_history(
                    status,
                    self._id("artifact-" + sha256_hex(artifact.location)[:16]),
                    "ArtifactStored",
                    {"location": artifact.location, "size": str(artifact.size or 0)},
                    artifact.created_at,
                )

        self.client.update(change)

    def usage(self, model: str, input_tokens: int, output_tokens: int, cost: Decimal) -> Decimal:
        """Add usage to status.usage; raise BudgetExceededError once the budget is spent."""
        total: Decimal = self.client.update(
            lambda s: contract.add_usage(s, model, input_tokens, output_tokens, cost)
        )
        self.check_budget(total)
        return total

    def spent(self) -> Decimal:
        usage = (self.client.get().get("status") or {}).get("usage") or {}
        return Decimal(str(usage.get("cost", "0")))

    def check_budget(self, spent: Decimal | None = None) -> None:
        """Raise BudgetExceededError when the Session's budget is spent."""
        total = self.spent() if spent is None else spent
        budget = self.context.budget
        if contract.over_budget(budget, total):
            raise BudgetExceededError(
                f"spent {contract.cents(total)} of the Session's budget {budget}"
            )

    def result(self, summary: str, **data: str) -> None:
        """Record the runner's result as its last history entry."""
        self.history("RunnerSucceeded", {"summary": summary[:4000], **data}, key="result")

    def fail(self, reason: str, message: str, exit_code: int = 1, **details: str) -> NoReturn:
        """Write the termination message the operator reads, and exit non-zero."""
        text = contract.termination_message(reason, message, **details)
        # Outside a pod the log may not be writable; stderr still carries the message
        # (the container's terminationMessagePolicy is FallbackToLogsOnError).
        with contextlib.suppress(OSError):
            self.termination_log.write_text(text)
        print(text, file=sys.stderr)  # noqa: T201
        try:
            self.history(
                "RunnerFailed", {"reason": reason, "message": message[:4000]}, key="failed"
            )
        except Exception as exc:  # the exit code still tells the operator
            print(f"could not record the failure in history: {exc}", file=sys.stderr)  # noqa: T201
        raise SystemExit(exit_code)
