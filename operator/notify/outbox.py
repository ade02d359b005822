"""Notifications, wired: what a Session owes goes to the Notifier; outcomes go to history.

Level-triggered like reconciliation: every Session event asks ``notifications.owed``; a
delivery is recorded in the Session's history when it ends (delivered, or retries spent),
and only then stops being owed. Endpoints are called from background workers, so a dead
one never holds up a reconcile.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pydantic

from ambient.common.audit import trail as audit
from ambient.common.audit.records import record as audit_record
from ambient.common.kube.client import ConflictError, GoneError, Kube
from ambient.crds.models import NamespacePolicy, Session
from ambient.operator.metrics import OperatorMetrics
from ambient.operator.notify import rules as notifications
from ambient.operator.notify.egress import EgressRule
from ambient.operator.notify.sender import ERROR_MAX, Job, Notifier, Outcome
from ambient.operator.sessions.status import StatusEditor, wire

log = logging.getLogger(__name__)

SIGNING_FIELD = "notifications"
SECRET_TTL_SECONDS = 60.0  # default: a rotated signing secret is picked up within a minute
WRITE_ATTEMPTS = 8


class Outbox:
    """Per-operator state: signing secrets, the notifier. The policies' notification
    settings come from ``policy_of`` (the operator's one policy cache)."""

    def __init__(
        self,
        api: Kube,
        policy_of: Callable[[str], NamespacePolicy | None],
        metrics: OperatorMetrics | None = None,
        ca_file: Path | None = None,
        egress_rule: EgressRule | None = None,
        *,
        secret_ttl: float = SECRET_TTL_SECONDS,
    ) -> None:
        self._api = api
        self._secret_ttl = secret_ttl
        self._metrics = metrics
        self._policy_of = policy_of
        self._secrets: dict[tuple[str, str], tuple[float, bytes | None]] = {}
        # Deliveries recorded by this process: a stale event must not send them again.
        self._recorded: OrderedDict[str, None] = OrderedDict()
        context = None
        if ca_file is not None:
            context = ssl.create_default_context()
            context.load_verify_locations(cafile=str(ca_file))
        self.ssl_context = context  # replies trust the same extra CA
        # Without a rule every internal address is refused (no allow-list).
        self.notifier = Notifier(self._record, ssl_context=context, egress_rule=egress_rule)

    async def start(self) -> None:
        await self.notifier.start()

    async def stop(self) -> None:
        await self.notifier.stop()

    async def session_changed(self, body: Mapping[str, Any]) -> None:
        """Submit whatever the Session's state owes that its history does not record."""
        namespace = str(body.get("metadata", {}).get("namespace", ""))
        policy = self._policy_of(namespace)
        if policy is None or not policy.spec.notifications.webhooks:
            return
        try:
            session = Session.model_validate(dict(body))
        except pydantic.ValidationError:
            return
        now = datetime.now(UTC)
        owed = [
            d
            for d in notifications.owed(session, policy.spec.notifications, now)
            if d.delivery_id not in self._recorded
        ]
        if not owed:
            return
        secret = await self._secret(namespace, policy)
        for delivery in owed:
            event_body = notifications.payload(session, delivery.event, now)
            if delivery.slack:
                event_body = notifications.slack_message(event_body)
            self.notifier.submit(
                Job(
                    namespace,
                    session.metadata.name,
                    delivery,
                    notifications.encode(event_body),
                    secret,
                )
            )

    async def _secret(self, namespace: str, policy: NamespacePolicy) -> bytes | None:
        ref = policy.spec.notifications.signing_secret_ref
        if ref is None:
            return None
        cached = self._secrets.get((namespace, ref.name))
        if cached is not None and time.monotonic() - cached[0] < self._secret_ttl:
            return cached[1]
        value = await asyncio.to_thread(
            self._api.read_secret_key, namespace, ref.name, SIGNING_FIELD
        )
        self._secrets[(namespace, ref.name)] = (time.monotonic(), value)
        return value

    async def _record(self, job: Job, outcome: Outcome) -> None:
        """The delivery's end goes into the Session's history (and the audit log)."""
        event = (
            notifications.HISTORY_DELIVERED if outcome.delivered else notifications.HISTORY_FAILED
        )
        data = {
            "event": job.delivery.event.value,
            "endpoint": notifications.endpoint_id(job.delivery.url),
            "attempts": str(outcome.attempts),
            "status": str(outcome.status or ""),
            "error": outcome.error[:ERROR_MAX],  # bounded: history is the tenant's to read
        }
        if self._metrics is not None:
            self._metrics.notifications.labels(
                event=job.delivery.event.value,
                outcome="delivered" if outcome.delivered else "failed",
            ).inc()
        for _ in range(WRITE_ATTEMPTS):
            try:
                body = await asyncio.to_thread(self._api.get_session, job.namespace, job.session)
            except GoneError:
                return
            session = Session.model_validate(body)
            stored = wire(session.status)
            edit = StatusEditor(session.status, datetime.now(UTC), session.metadata.generation)
            if not edit.append(job.delivery.history_id, event, data):
                break  # already recorded (another writer got there first)
            try:
                await asyncio.to_thread(
                    self._api.patch_session_status,
                    job.namespace,
                    job.session,
                    session.metadata.resource_version,
                    stored,
                    wire(edit.status),
                )
            except ConflictError:
                continue
            except GoneError:
                return
            audit.emit(
                audit_record(
                    namespace=job.namespace,
                    session_id=session.metadata.uid,
                    actor="ambient-operator",
                    action=event,
                    resource=f"sessions/{job.session}",
                    outcome="success" if outcome.delivered else "failure",
                    details=data,
                    trace_id=job.delivery.delivery_id,
                )
            )
            break
        self._recorded[job.delivery.delivery_id] = None
        while len(self._recorded) > 10_000:
            self._recorded.popitem(last=False)
