"""Operator configuration: every setting is also an environment variable (AMBIENT_*)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from ambient.runners.registry import DEFAULT_REGISTRY_FILE


class OperatorSettings(BaseSettings):
    """What a platform team can tune without a code change."""

    model_config = SettingsConfigDict(env_prefix="AMBIENT_", extra="ignore")

    registry_file: Path = DEFAULT_REGISTRY_FILE
    """The runner registry (the chart mounts it from a ConfigMap)."""
    image_registry: str = ""
    """Prefix for runner images that name no registry host."""
    namespaces: str = ""
    """Comma-separated namespaces to watch; empty means the whole cluster."""
    job_ttl_seconds: int = Field(default=86_400, ge=0)
    """ttlSecondsAfterFinished for runner Jobs; the Session keeps the record."""
    job_backoff_limit: int = Field(default=0, ge=0, le=10)
    """Pod retries inside one Job. Retries across attempts are the operator's business."""
    max_inline_context_bytes: int = Field(default=128 * 1024, ge=1024, le=200 * 1024)
    """Largest context passed through a pod annotation; larger ones go in a ConfigMap."""
    runner_user_id: int = Field(default=65532, ge=1)
    """UID the runner container runs as (non-root)."""
    workers: int = Field(default=24, ge=1, le=256)
    """Kubernetes API calls in flight at once (threads and client connections)."""
    artifacts_secret: str = "ambient-artifacts"  # noqa: S105 - a Secret name
    """Secret in each Session's namespace with the artifact store's credentials (e.g.
    AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY); passed to runners as env, optional."""
    s3_endpoint_url: str = ""
    """S3-compatible endpoint for runners (AWS_ENDPOINT_URL_S3); empty means AWS."""
    s3_bucket: str = ""
    """Default artifact bucket when a Session names none (AMBIENT_S3_BUCKET for runners)."""
    s3_prefix: str = ""
    """Default key prefix in that bucket."""
    identity: str = "ambient-operator"
    """Actor name in audit records and the Kubernetes field manager."""

    @property
    def namespace_list(self) -> list[str]:
        """The namespaces to watch, parsed."""
        return [n.strip() for n in self.namespaces.split(",") if n.strip()]
