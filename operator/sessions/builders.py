"""Pure builders: the manifests the operator creates for a Session."""

from __future__ import annotations

import json
from typing import Any

from ambient.crds import naming
from ambient.crds.credentials import N8N_CREDENTIALS_SECRET, N8N_ENV
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
    context_document,
)

TOKEN_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"  # noqa: S105 - a path
TOKEN_EXPIRY_SECONDS = 3600
"""The projected runner token's lifetime; the kubelet refreshes it before it expires."""


def runner_context(session: Session, runner: ResolvedRunner, job_name: str) -> dict[str, Any]:
    """Everything the runner needs to know, as the mounted context file holds it."""
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
        {"name": "AMBIENT_SESSION_NAME", "value": session.metadata.name},
        {"name": "AMBIENT_SESSION_NAMESPACE", "value": session.metadata.namespace},
        {"name": "HOME", "value": "/tmp"},  # noqa: S108 - the container's own tmpfs
    ] + [{"name": k, "value": v} for k, v in sorted(runner.env.items())]
    env += _artifact_env(settings)
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
            {"name": "workspace", "mountPath": "/workspace"},
            {"name": "tmp", "mountPath": "/tmp"},  # noqa: S108 - a tmpfs for the runner
            {"name": "runner-token", "mountPath": TOKEN_DIR, "readOnly": True},
        ],
        "workingDir": "/workspace",
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
