"""Pure helpers that change a SessionStatus: conditions and idempotent history appends."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ambient.crds.events import HistoryEvent
from ambient.crds.history import known_ids, next_seq
from ambient.crds.models import (
    MAX_HISTORY_ENTRIES,
    MAX_HISTORY_VALUE,
    Condition,
    ConditionStatus,
    HistoryEntry,
    Phase,
    SessionStatus,
)
from ambient.crds.times import rfc3339


class StatusEditor:
    """Edits a copy of a status; remembers which history entries it added."""

    def __init__(self, status: SessionStatus, now: datetime, generation: int) -> None:
        self.status = status.model_copy(deep=True)
        self.now = rfc3339(now)
        self.generation = generation
        self.added: list[HistoryEntry] = []
        self._ids = known_ids(self.status.history)

    def has(self, entry_id: str) -> bool:
        """Whether history already holds an entry with this id (archived ones included:
        the newest HistoryArchived entry carries the operator's archived ids)."""
        return entry_id in self._ids

    def append(
        self, entry_id: str, event: HistoryEvent, data: dict[str, str] | None = None
    ) -> bool:
        """Append an entry unless one with the same id exists (idempotent across restarts)."""
        if self.has(entry_id):
            return False
        if len(self.status.history) >= MAX_HISTORY_ENTRIES:
            # The operator archives older entries before it plans (history_archive), so
            # the window is full only without an artifact store; nothing is overwritten.
            return False
        entry = HistoryEntry(
            seq=next_seq(self.status.history, self.status.history_archives),
            id=entry_id,
            timestamp=self.now,
            event=event,
            # The CRD refuses longer values, and with them the whole status write.
            data={k: v[:MAX_HISTORY_VALUE] for k, v in (data or {}).items() if v},
        )
        self.status.history.append(entry)
        self.added.append(entry)
        self._ids.add(entry_id)
        return True

    def condition(self, ctype: str, status: bool, reason: str, message: str = "") -> None:
        """Set a condition; lastTransitionTime moves only when the status flips."""
        value = ConditionStatus.TRUE if status else ConditionStatus.FALSE
        for i, cond in enumerate(self.status.conditions):
            if cond.type == ctype:
                changed = cond.status != value
                self.status.conditions[i] = Condition(
                    type=ctype,
                    status=value,
                    reason=reason,
                    message=message,
                    last_transition_time=self.now if changed else cond.last_transition_time,
                    observed_generation=self.generation,
                )
                return
        self.status.conditions.append(
            Condition(
                type=ctype,
                status=value,
                reason=reason,
                message=message,
                last_transition_time=self.now,
                observed_generation=self.generation,
            )
        )

    def get_condition(self, ctype: str) -> Condition | None:
        """The condition of this type, if set."""
        return next((c for c in self.status.conditions if c.type == ctype), None)

    def phase(self, phase: Phase, reason: str, message: str = "") -> None:
        """Move to a phase with its finer reason."""
        self.status.phase = phase
        self.status.reason = reason
        self.status.message = message or None
        self.status.observed_generation = self.generation
        if phase in (Phase.COMPLETED, Phase.FAILED) and not self.status.completion_time:
            self.status.completion_time = self.now


def wire(status: SessionStatus) -> dict[str, Any]:
    """The status as the API server stores it (JSON names, unset fields left out): what
    a status patch is computed from and sent as."""
    return status.model_dump(mode="json", by_alias=True, exclude_none=True)
