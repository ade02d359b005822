"""The NamespacePolicy list+watch loop both webhooks run, feeding a sink.

The ingress feeds its key index (through ``ingress.keyindex.KeyIndexSink``), the admission
webhook its policy cache. Neither makes an API call per request: what they know about
policies is what this loop last delivered. The calls go through ``common.kube.client``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from typing import Any, Protocol

from ambient.common.kube.client import Kube
from ambient.crds.models import GROUP, VERSION

log = logging.getLogger(__name__)
WATCH_SECONDS = 300  # the server ends each watch after this; the loop lists again
POLICIES = f"/apis/{GROUP}/{VERSION}/namespacepolicies"


class PolicySink(Protocol):
    """Where the loop puts what it sees: whole NamespacePolicy objects, as the API has them."""

    def replace_all(self, items: list[Mapping[str, Any]]) -> None:
        """After a (re-)list: exactly these policies exist (and the sink has synced)."""

    def upsert(self, item: Mapping[str, Any]) -> None:
        """A policy was added or changed."""

    def remove(self, item: Mapping[str, Any]) -> None:
        """A policy was deleted."""


def watch_policies(
    kube: Kube,
    sink: PolicySink,
    stop: threading.Event,
    *,
    retry_seconds: float = 1.0,
) -> None:
    """List, then watch from the list's resourceVersion; list again after any failure, an
    ERROR event (e.g. 410 Gone) or the watch's end, until ``stop`` is set."""
    while not stop.is_set():
        try:
            listing = kube.call("GET", POLICIES)
            sink.replace_all(listing["items"])
            rv = str(listing["metadata"]["resourceVersion"])
            for kind, obj in kube.watch(POLICIES, rv, timeout_seconds=WATCH_SECONDS):
                if stop.is_set():
                    break
                if kind == "BOOKMARK":
                    continue
                if kind == "ERROR":
                    break  # e.g. 410 Gone: list again
                if kind == "DELETED":
                    sink.remove(obj)
                else:
                    sink.upsert(obj)
        except Exception as exc:  # keep watching through API server outages
            log.warning("NamespacePolicy watch failed, listing again: %s", type(exc).__name__)
            stop.wait(retry_seconds)
