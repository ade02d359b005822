"""The admission webhook's one module that talks to the Kubernetes API: the client for the
shared NamespacePolicy list+watch that feeds the cache (no API call per admission request)."""

from __future__ import annotations

import threading

from kubernetes import client, config

from ambient.webhooks.policy_watch import PolicySink
from ambient.webhooks.policy_watch import watch_policies as _watch

REQUEST_TIMEOUT = 30


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
    _watch(custom, sink, stop, request_timeout=REQUEST_TIMEOUT)
