"""The NamespacePolicy list+watch loop both webhooks run, feeding a sink.

The ingress feeds its key index (through ``ingress.keyindex.KeyIndexSink``), the admission
webhook its policy cache. Neither makes an API call per request: what they know about
policies is what this loop last delivered.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from typing import Any, Protocol, cast

from kubernetes import client, watch

from ambient.crds.models import GROUP, VERSION

log = logging.getLogger(__name__)
WATCH_SECONDS = 300  # the server ends each watch after this; the loop lists again


class PolicySink(Protocol):
    """Where the loop puts what it sees: whole NamespacePolicy objects, as the API has them."""

    def replace_all(self, items: list[Mapping[str, Any]]) -> None:
        """After a (re-)list: exactly these policies exist (and the sink has synced)."""

    def upsert(self, item: Mapping[str, Any]) -> None:
        """A policy was added or changed."""

    def remove(self, item: Mapping[str, Any]) -> None:
        """A policy was deleted."""


def watch_policies(
    custom: client.CustomObjectsApi,
    sink: PolicySink,
    stop: threading.Event,
    *,
    request_timeout: float = 30.0,
    retry_seconds: float = 1.0,
) -> None:
    """List, then watch from the list's resourceVersion; list again after any failure, an
    ERROR event (e.g. 410 Gone) or the watch's end, until ``stop`` is set."""
    while not stop.is_set():
        try:
            listing = cast(
                dict[str, Any],
                custom.list_cluster_custom_object(
                    GROUP, VERSION, "namespacepolicies", _request_timeout=request_timeout
                ),
            )
            sink.replace_all(listing["items"])
            w = watch.Watch()
            for event in w.stream(
                custom.list_cluster_custom_object,
                GROUP,
                VERSION,
                "namespacepolicies",
                resource_version=listing["metadata"]["resourceVersion"],
                timeout_seconds=WATCH_SECONDS,
                allow_watch_bookmarks=True,
            ):
                if stop.is_set():
                    w.stop()
                    break
                kind, obj = event["type"], event["object"]
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
