"""Builds the operator from its settings: the controller with everything it is given, and
the supervisor with every loop and service, so the kopf adapter only starts and stops."""

from __future__ import annotations

from ambient.common.kube.client import Kube
from ambient.operator import background, metrics
from ambient.operator.clock import Clock, SystemClock
from ambient.operator.controller import Controller, PostEvent
from ambient.operator.history.archiver import Archiver
from ambient.operator.history.rules import ArchivePolicy
from ambient.operator.notify.outbox import Outbox
from ambient.operator.policies import PolicyCache
from ambient.operator.replies.client import ReplyClient
from ambient.operator.replies.sender import Replier
from ambient.operator.settings import OperatorSettings
from ambient.operator.state import StateStore
from ambient.operator.supervisor import Supervisor
from ambient.runners.registry import Registry


async def assemble(
    api: Kube,
    settings: OperatorSettings,
    registry: Registry,
    post_event: PostEvent,
    clock: Clock | None = None,
) -> tuple[Controller, Supervisor]:
    """The controller (its policies listed) and the supervisor, not yet started."""
    clock = clock or SystemClock()
    store, prefix = background.store_from_settings()
    archiver = Archiver(
        api,
        store,
        prefix,
        ArchivePolicy(
            at_entries=settings.history_archive_at_entries,
            batch=settings.history_archive_batch,
            at_bytes=settings.history_archive_at_bytes,
        ),
        settings.identity,
    )
    state = StateStore()
    om = metrics.create(state.session_samples, state.policy_samples)
    policies = PolicyCache()
    outbox = Outbox(
        api,
        policies.policy,
        om,
        settings.notify_ca_file,
        settings.notify_egress_rule,
        secret_ttl=settings.notify_secret_ttl_seconds,
    )
    # Replies reuse the notification egress rule (the Jira site is the tenant's) and CA.
    replier = Replier(
        api,
        policies.policy,
        ReplyClient(
            settings.github_api_url,
            settings.slack_api_url,
            ssl_context=outbox.ssl_context,
            egress_rule=settings.notify_egress_rule,
        ),
        max_attempts=settings.reply_max_attempts,
        base_backoff=settings.reply_backoff_seconds,
    )
    controller = Controller(
        api=api,
        clock=clock,
        settings=settings,
        registry=registry,
        metrics=om,
        post_event=post_event,
        policies=policies,
        state=state,
        archiver=archiver,
        outbox=outbox,
        replier=replier,
    )
    await controller.prime_policies()
    supervisor = Supervisor()
    background.supervise(
        supervisor,
        api=api,
        settings=settings,
        om=om,
        store=store,
        prefix=prefix,
        remember=state.remember_policy,
        now=clock.now,
    )
    supervisor.service(outbox.start, outbox.stop)
    supervisor.service(replier.start, replier.stop)
    controller.supervise(supervisor)
    return controller, supervisor
