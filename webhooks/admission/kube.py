"""The admission webhook's one module that talks to the Kubernetes API: a NamespacePolicy
list+watch feeding the cache (no API call per admission request)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from typing import Any, Protocol, cast

from kubernetes import client, config, watch

from ambient.crds.models import GROUP, VERSION

log = logging.getLogger(__name__)
REQUEST_TIMEOUT = 30


class PolicySink(Protocol):
    def replace_all(self, items: list[Mapping[str, Any]]) -> None: ...

    def upsert(self, item: Mapping[str, Any]) -> None: ...

    def remove(self, item: Mapping[str, Any]) -> None: ...


def custom_objects(kubeconfig: str | None = None) -> client.CustomObjectsApi:
    try:
        config.load_incluster_config()
    except config.ConfigException:
        config.load_kube_config(config_file=kubeconfig)
    return client.CustomObjectsApi()


def watch_policies(
    custom: client.CustomObjectsApi, sink: PolicySink, stop: threading.Event
) -> None:
    """List, then watch; re-list after any failure or expiry, until ``stop``."""
    while not stop.is_set():
        try:
            listing = cast(
                dict[str, Any],
                custom.list_cluster_custom_object(
                    GROUP, VERSION, "namespacepolicies", _request_timeout=REQUEST_TIMEOUT
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
                timeout_seconds=300,
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
            stop.wait(1.0)
