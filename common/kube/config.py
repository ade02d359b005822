"""Where the API server is and how to log in: the one loader every client here uses.

Read when called, never at import: in a cluster, the pod's service account; else the
kubeconfig's current context (the path given, $KUBECONFIG as it is now — a list of paths
merged as kubectl does — or ~/.kube/config). The official client's loader reads it, so
every way of logging in it supports works here too: client certificates, tokens, token
files, and exec plugins such as EKS's and GKE's. Its refresh hook runs on every
``authorization`` call: a rotated service-account token is re-read, an exec plugin's
expired credential fetched again.
"""

from __future__ import annotations

import os
import ssl

from kubernetes import client
from kubernetes import config as k8s_config

Configuration = client.Configuration
"""The loaded configuration: ``host``, TLS files, and the credential (with its refresh hook)."""


def configuration(
    kubeconfig: str | None = None, context: str | None = None
) -> client.Configuration:
    """In a cluster (and no ``kubeconfig`` or ``context`` given), the pod's service
    account; else the kubeconfig's ``context`` or current context (``kubeconfig``,
    $KUBECONFIG or ~/.kube/config)."""
    cfg = client.Configuration()
    if kubeconfig is None and context is None:
        try:
            k8s_config.load_incluster_config(client_configuration=cfg)
            return cfg
        except k8s_config.ConfigException:
            pass
    # $KUBECONFIG read now: the loader's own default is read when it is imported.
    path = kubeconfig or os.environ.get("KUBECONFIG") or None
    k8s_config.load_kube_config(config_file=path, context=context, client_configuration=cfg)
    return cfg


def default_namespace(kubeconfig: str | None = None, context: str | None = None) -> str:
    """The namespace a command acts in when none is given, as kubectl chooses it: the
    context's namespace, in a pod its own, else ``default``."""
    path = kubeconfig or os.environ.get("KUBECONFIG") or None
    try:
        contexts, current = k8s_config.list_kube_config_contexts(config_file=path)
    except (k8s_config.ConfigException, OSError):
        try:
            with open(_POD_NAMESPACE) as handle:
                return handle.read().strip() or "default"
        except OSError:
            return "default"
    chosen = next((c for c in contexts if c["name"] == context), current) if context else current
    return str(((chosen or {}).get("context") or {}).get("namespace") or "default")


_POD_NAMESPACE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"


def authorization(cfg: client.Configuration) -> str | None:
    """The Authorization header's value (``Bearer ...``), or None when the configuration
    logs in by client certificate only. Runs the loader's refresh hook."""
    token = cfg.get_api_key_with_prefix("authorization")
    # A token file written with a final newline would otherwise end the header.
    return str(token).strip() if token else None


def ssl_context(cfg: client.Configuration) -> ssl.SSLContext | None:
    """The configuration's TLS settings as an SSLContext (None for plain HTTP): the
    cluster's CA, the client certificate (the loader writes embedded data to files)."""
    if not cfg.host.startswith("https"):
        return None
    context = ssl.create_default_context(cafile=cfg.ssl_ca_cert)
    if cfg.cert_file:
        context.load_cert_chain(cfg.cert_file, cfg.key_file)
    if not cfg.verify_ssl:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context
