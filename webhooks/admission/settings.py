"""Admission webhook settings: every one is also an environment variable AMBIENT_ADMISSION_*."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from ambient.runners.registry import DEFAULT_REGISTRY_FILE


class AdmissionSettings(BaseSettings):
    """Where to listen, with which certificate, and whom to trust for status writes."""

    model_config = SettingsConfigDict(env_prefix="AMBIENT_ADMISSION_", extra="ignore")

    host: str = "0.0.0.0"  # noqa: S104 - a server; the chart's NetworkPolicy decides exposure
    port: int = Field(default=8443, ge=1, le=65535)
    cert_file: Path = Path("/etc/ambient/tls/tls.crt")
    key_file: Path = Path("/etc/ambient/tls/tls.key")
    client_ca_file: Path | None = None
    """CA bundle of the client certificate the API server presents (its
    AdmissionConfiguration kubeConfigFile). Set, a caller without a certificate from it is
    refused in the TLS handshake, so only the API server reaches the webhook and the
    userInfo and namespace an audit record carries are the API server's. Use a CA that
    signs that one certificate only, not the cluster's client CA."""
    max_body_bytes: int = Field(default=3 * 1024 * 1024 + 256 * 1024, ge=1024)
    """Largest request body read; larger ones are refused (413) before more is read. An
    object is at most 1.5 MiB (etcd's limit) and an update's review carries it twice
    (object, oldObject), so 3 MiB plus room for the review's envelope."""
    signing_secret_names: str = ""
    """Comma-separated Secret names a NamespacePolicy's signingSecretRef (webhook auth and
    notifications) may name: the names RBAC lets the operator and the ingress read (the
    chart's secrets.signingSecretNames). Empty: any DNS-1123 name is admitted."""
    cert_reload_seconds: float = Field(default=10.0, gt=0, le=3600)
    """How often the certificate files are checked; a renewed pair is served without a restart."""
    operator_usernames: str = ""
    """Comma-separated usernames that write Session status (the operator's ServiceAccount,
    e.g. system:serviceaccount:ambient-system:ambient-operator)."""
    operator_groups: str = ""
    """Comma-separated groups whose members may write Session status. Empty by default:
    not even system:masters writes status unless named here."""
    product_namespace: str = "ambient-system"
    """The product's own namespace (the webhook configuration leaves it out)."""
    default_policy_file: Path | None = None
    """A NamespacePolicy (YAML) for namespaces that have none; unset means default deny."""
    registry_file: Path = DEFAULT_REGISTRY_FILE
    """The runner registry, to check framework types and versions."""
    audit_flush_seconds: float = Field(default=5.0, gt=0)
    log_format: str = Field(default="json", pattern="^(json|text)$")
    """json (one object a line, for log shippers) or text (for local work)."""
    """How often decisions are written to the artifact store, when AMBIENT_STORE_BUCKET
    is set (the operator's store settings)."""

    @staticmethod
    def _split(value: str) -> frozenset[str]:
        return frozenset(v.strip() for v in value.split(",") if v.strip())

    @property
    def usernames(self) -> frozenset[str]:
        return self._split(self.operator_usernames)

    @property
    def signing_secrets(self) -> frozenset[str]:
        return self._split(self.signing_secret_names)

    @property
    def groups(self) -> frozenset[str]:
        return self._split(self.operator_groups)
