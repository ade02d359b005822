"""Pure builders: the manifests the operator creates for a Session."""

from __future__ import annotations

import json
from typing import Any

from ambient.crds import credentials, naming
from ambient.crds.credentials import N8N_CREDENTIALS_SECRET, N8N_ENV
from ambient.crds.digests import sha256_hex
from ambient.crds.models import API_VERSION, GROUP, Session, StorageType
from ambient.operator.sessions.observe import RUNNER_CONTAINER
from ambient.operator.settings import OperatorSettings
from ambient.runners.registry import ResolvedRunner
from ambient.runners.sdk.contract import (
    ARTIFACTS_MOUNT,
    CONTEXT_DIR,
    CONTEXT_ENV,
    CONTEXT_FILE,
    CONTEXT_PATH,
    CONTEXT_SHA256_ENV,
    context_document,
)

TOKEN_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"  # noqa: S105 - a path
TOKEN_EXPIRY_SECONDS = 3600
"""The projected runner token's lifetime; the kubelet refreshes it before it expires."""
WORKSPACE = "/workspace"
"""The runner's workspace: an emptyDir, so the root filesystem stays read-only."""
RUNNER_HOME = f"{WORKSPACE}/.home"
"""HOME (and the caches under it) on the workspace's emptyDir; the runner creates it."""
GIT_TOKEN_ENV = "AMBIENT_GIT_TOKEN"  # noqa: S105 - a variable's name
"""The source Secret's GitHub token, for the runner's checkout and push."""
MODEL_ENV = {
    "ANTHROPIC_API_KEY": credentials.ANTHROPIC_API_KEY_KEY,
    "ANTHROPIC_BASE_URL": credentials.ANTHROPIC_BASE_URL_KEY,
    "OPENAI_API_KEY": credentials.OPENAI_API_KEY_KEY,
}
"""Runner variables filled from the model credentials Secret's keys."""
DEFAULT_MODEL_ENV_PREFIX = "AMBIENT_DEFAULT_"
"""The cluster default Secret's values arrive as AMBIENT_DEFAULT_<variable>; the runner
uses one only where the namespace's own Secret left the variable unset."""


def runner_context(
    session: Session,
    runner: ResolvedRunner,
    job_name: str,
    blocked_tools: tuple[str, ...] | list[str] = (),
) -> dict[str, Any]:
    """Everything the runner needs to know, as the mounted context file holds it: the
    Session's spec, the namespace policy's blocked tools and the registry's prices."""
    spec = session.spec
    return context_document(
        name=session.metadata.name,
        namespace=session.metadata.namespace,
        uid=session.metadata.uid,
        job_name=job_name,
        trigger=spec.trigger.model_dump(mode="json", exclude_none=True),
        framework=runner.framework,
        version=runner.version,
        config=spec.framework.config,
        policy=spec.policy.model_dump(mode="json", exclude_none=True),
        artifacts=spec.artifacts.model_dump(mode="json", exclude_none=True),
        timeout_seconds=spec.timeout_seconds or runner.timeout_seconds,
        blocked_tools=list(blocked_tools),
        pricing={m: p.model_dump(by_alias=True) for m, p in runner.pricing.items()},
    )


def owner_reference(session: Session) -> dict[str, Any]:
    """Children are owned by the Session, so deleting it garbage-collects them."""
    return {
        "apiVersion": API_VERSION,
        "kind": "Session",
        "name": session.metadata.name,
        "uid": session.metadata.uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def _labels(session: Session, runner: ResolvedRunner) -> dict[str, str]:
    return {
        naming.LABEL_SESSION: naming.session_label_value(session.metadata.name),
        naming.LABEL_FRAMEWORK: runner.framework,
        naming.LABEL_MANAGED_BY: naming.MANAGED_BY,
    }


def runner_service_account(session: Session) -> dict[str, Any]:
    """The Session's runner identity: one ServiceAccount per Session, owned by it."""
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {
            "name": naming.runner_service_account(session.metadata.name),
            "namespace": session.metadata.namespace,
            "labels": _identity_labels(session),
            "ownerReferences": [owner_reference(session)],
        },
        # The token is projected into the pod explicitly, with a short expiry.
        "automountServiceAccountToken": False,
    }


def runner_role(session: Session) -> dict[str, Any]:
    """Exactly what the runner contract needs, on this Session only (resourceNames)."""
    name = session.metadata.name
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {
            "name": naming.runner_service_account(name),
            "namespace": session.metadata.namespace,
            "labels": _identity_labels(session),
            "ownerReferences": [owner_reference(session)],
        },
        "rules": [
            {
                "apiGroups": [GROUP],
                "resources": ["sessions"],
                "resourceNames": [name],
                "verbs": ["get"],
            },
            {
                "apiGroups": [GROUP],
                "resources": ["sessions/status"],
                "resourceNames": [name],
                "verbs": ["get", "patch", "update"],
            },
        ],
    }


def runner_role_binding(session: Session) -> dict[str, Any]:
    """Binds the Session's Role to the Session's ServiceAccount."""
    sa = naming.runner_service_account(session.metadata.name)
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {
            "name": sa,
            "namespace": session.metadata.namespace,
            "labels": _identity_labels(session),
            "ownerReferences": [owner_reference(session)],
        },
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": sa},
        "subjects": [
            {"kind": "ServiceAccount", "name": sa, "namespace": session.metadata.namespace}
        ],
    }


def runner_identity(session: Session) -> list[dict[str, Any]]:
    """ServiceAccount, Role and RoleBinding, in the order they must be created."""
    return [runner_service_account(session), runner_role(session), runner_role_binding(session)]


def _identity_labels(session: Session) -> dict[str, str]:
    return {
        naming.LABEL_SESSION: naming.session_label_value(session.metadata.name),
        naming.LABEL_MANAGED_BY: naming.MANAGED_BY,
    }


def _token_volume() -> dict[str, Any]:
    """The API token at the standard path, projected with a short expiry and the API
    server's default audience, plus the CA and namespace a client expects beside it."""
    return {
        "name": "runner-token",
        "projected": {
            "sources": [
                {
                    "serviceAccountToken": {
                        "path": "token",
                        "expirationSeconds": TOKEN_EXPIRY_SECONDS,
                    }
                },
                {
                    "configMap": {
                        "name": "kube-root-ca.crt",
                        "items": [{"key": "ca.crt", "path": "ca.crt"}],
                    }
                },
                {
                    "downwardAPI": {
                        "items": [
                            {"path": "namespace", "fieldRef": {"fieldPath": "metadata.namespace"}}
                        ]
                    }
                },
            ]
        },
    }


def _framework_env(session: Session) -> list[dict[str, Any]]:
    """The n8n runner's base URL and credentials from the namespace's fixed Secret
    (crds/credentials.py), each key optional so a missing one is the runner's clear error."""
    if session.spec.framework.type != "n8n":
        return []
    return [
        {
            "name": env,
            "valueFrom": {
                "secretKeyRef": {"name": N8N_CREDENTIALS_SECRET, "key": key, "optional": True}
            },
        }
        for key, env in sorted(N8N_ENV.items())
    ]


AGENT_MODULE_DIR = "/opt/ambient/agent"
"""Where framework.config.moduleConfigMap is mounted; the runners search it first
(runners/sdk/target.py, AMBIENT_AGENT_PATH)."""


def _agent_module_volume(session: Session) -> dict[str, Any] | None:
    """framework.config.moduleConfigMap: a ConfigMap of the Session's own namespace whose
    keys are Python files (a graph, crew or agent module), mounted read-only."""
    name = session.spec.framework.config.get("moduleConfigMap")
    if not isinstance(name, str) or not naming.is_dns_subdomain(name):
        return None
    return {"name": "agent-module", "configMap": {"name": name}}


def _artifact_env(settings: OperatorSettings) -> list[dict[str, str]]:
    """The namespace defaults of the artifact store, as the runner SDK reads them."""
    pairs = {
        "AWS_ENDPOINT_URL_S3": settings.s3_endpoint_url,
        "AMBIENT_S3_BUCKET": settings.s3_bucket,
        "AMBIENT_S3_PREFIX": settings.s3_prefix,
    }
    return [{"name": k, "value": v} for k, v in pairs.items() if v]


def _secret_env(name: str, secret: str, key: str) -> dict[str, Any]:
    ref = {"name": secret, "key": key, "optional": True}
    return {"name": name, "valueFrom": {"secretKeyRef": ref}}


def credential_env(settings: OperatorSettings) -> list[dict[str, Any]]:
    """The model credentials from the namespace's fixed Secret (and the cluster default
    Secret the chart names, under AMBIENT_DEFAULT_*), and the source Secret's GitHub token
    for the checkout; every one optional, so a runner that needs none starts without."""
    env = [
        _secret_env(var, credentials.MODEL_CREDENTIALS_SECRET, key)
        for var, key in MODEL_ENV.items()
    ]
    if settings.model_credentials_default_secret:
        env += [
            _secret_env(
                DEFAULT_MODEL_ENV_PREFIX + var, settings.model_credentials_default_secret, key
            )
            for var, key in MODEL_ENV.items()
        ]
    env.append(
        _secret_env(
            GIT_TOKEN_ENV, credentials.SOURCE_CREDENTIALS_SECRET, credentials.GITHUB_TOKEN_KEY
        )
    )
    return env


def context_json(context: dict[str, Any]) -> str:
    """Compact, key-sorted JSON: the same Session always gives the same bytes."""
    return json.dumps(context, sort_keys=True, separators=(",", ":"))


def context_configmap(
    session: Session, runner: ResolvedRunner, job_name: str, context: str
) -> dict[str, Any]:
    """A ConfigMap for a context too large for a pod annotation."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": naming.context_configmap_name(job_name),
            "namespace": session.metadata.namespace,
            "labels": _labels(session, runner),
            "ownerReferences": [owner_reference(session)],
        },
        "data": {CONTEXT_FILE: context},
    }


def runner_job(
    session: Session,
    runner: ResolvedRunner,
    settings: OperatorSettings,
    job_name: str,
    context: str,
) -> dict[str, Any]:
    """The runner Job: restricted pod, context mounted read-only, owned by the Session.

    A small context rides in a pod annotation and reaches the file through the downward
    API, so the common case costs one write; a large one is read from the ConfigMap that
    ``context_configmap`` builds.
    """
    inline = len(context.encode()) <= settings.max_inline_context_bytes
    labels = _labels(session, runner)
    pod_annotations = {
        k: v
        for k, v in session.metadata.annotations.items()
        if k.startswith(naming.SIMULATION_PREFIX)
    }
    if inline:
        pod_annotations[naming.ANNOTATION_CONTEXT] = context
        context_volume: dict[str, Any] = {
            "name": "context",
            "downwardAPI": {
                "items": [
                    {
                        "path": CONTEXT_FILE,
                        "fieldRef": {
                            "fieldPath": f"metadata.annotations['{naming.ANNOTATION_CONTEXT}']"
                        },
                    }
                ]
            },
        }
    else:
        context_volume = {
            "name": "context",
            "configMap": {"name": naming.context_configmap_name(job_name)},
        }
    resources: dict[str, Any] = {}
    if runner.resources.requests:
        resources["requests"] = runner.resources.requests
    if runner.resources.limits:
        resources["limits"] = runner.resources.limits
    env = [
        {"name": CONTEXT_ENV, "value": CONTEXT_PATH},
        # The runner checks the file against it: a context ConfigMap edited after the
        # operator checked it is refused (the Job's pod template cannot be edited).
        {"name": CONTEXT_SHA256_ENV, "value": sha256_hex(context.encode())},
        {"name": "AMBIENT_SESSION_NAME", "value": session.metadata.name},
        {"name": "AMBIENT_SESSION_NAMESPACE", "value": session.metadata.namespace},
        {"name": "HOME", "value": RUNNER_HOME},
        {"name": "XDG_CACHE_HOME", "value": f"{RUNNER_HOME}/.cache"},
        {"name": "AMBIENT_WORKSPACE", "value": WORKSPACE},
    ] + [{"name": k, "value": v} for k, v in sorted(runner.env.items())]
    trace = session.metadata.annotations.get(naming.ANNOTATION_TRACE_ID)
    if trace:  # the runner's log lines carry the delivery's trace id
        env.append({"name": "AMBIENT_TRACE_ID", "value": trace})
    env += _artifact_env(settings)
    env += credential_env(settings)
    env += _framework_env(session)
    container: dict[str, Any] = {
        "name": RUNNER_CONTAINER,
        "image": runner.image,
        "command": runner.command,
        "args": runner.args,
        "env": env,
        "resources": resources,
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "volumeMounts": [
            {"name": "context", "mountPath": CONTEXT_DIR, "readOnly": True},
            {"name": "workspace", "mountPath": WORKSPACE},
            {"name": "tmp", "mountPath": "/tmp"},  # noqa: S108 - a tmpfs for the runner
            {"name": "runner-token", "mountPath": TOKEN_DIR, "readOnly": True},
        ],
        "workingDir": WORKSPACE,
        # Artifact store credentials from a Secret, optional so runners without one start.
        "envFrom": [{"secretRef": {"name": settings.artifacts_secret, "optional": True}}],
    }
    volumes: list[dict[str, Any]] = []
    agent_module = _agent_module_volume(session)
    if agent_module is not None:
        container["volumeMounts"].append(
            {"name": "agent-module", "mountPath": AGENT_MODULE_DIR, "readOnly": True}
        )
        volumes.append(agent_module)
    storage = session.spec.artifacts.storage
    if storage.type == StorageType.PVC and storage.location:
        container["volumeMounts"].append({"name": "artifacts", "mountPath": ARTIFACTS_MOUNT})
        volumes.append(
            {"name": "artifacts", "persistentVolumeClaim": {"claimName": storage.location}}
        )
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": job_name,
            "namespace": session.metadata.namespace,
            "labels": labels,
            "ownerReferences": [owner_reference(session)],
        },
        "spec": {
            "backoffLimit": settings.job_backoff_limit,
            "activeDeadlineSeconds": session.spec.timeout_seconds or runner.timeout_seconds,
            "ttlSecondsAfterFinished": settings.job_ttl_seconds,
            "template": {
                "metadata": {"labels": labels, "annotations": pod_annotations},
                "spec": {
                    "restartPolicy": "Never",
                    # Every runner reports to its Session's status, so it needs the API;
                    # the token is the projected one above, not the automounted one.
                    "serviceAccountName": naming.runner_service_account(session.metadata.name),
                    "automountServiceAccountToken": False,
                    "enableServiceLinks": False,
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": settings.runner_user_id,
                        "runAsGroup": settings.runner_user_id,
                        "fsGroup": settings.runner_user_id,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "containers": [container],
                    "volumes": [
                        context_volume,
                        {"name": "workspace", "emptyDir": {}},
                        {"name": "tmp", "emptyDir": {"medium": "Memory", "sizeLimit": "256Mi"}},
                        _token_volume(),
                        *volumes,
                    ],
                },
            },
        },
    }
