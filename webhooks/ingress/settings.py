"""Ingress settings: every one is also an environment variable AMBIENT_INGRESS_<NAME>."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class IngressSettings(BaseSettings):
    """Where to listen and how much to accept."""

    model_config = SettingsConfigDict(env_prefix="AMBIENT_INGRESS_")

    host: str = "0.0.0.0"  # noqa: S104 - it is a server; the chart decides exposure
    port: int = 8080
    max_body_bytes: int = 256 * 1024
    """Largest body kept inside the Session (etcd caps objects at 1.5 MiB). Larger bodies
    go to the artifact store (AMBIENT_STORE_*) and the Session references them; without
    a store they get 413."""
    max_stored_body_bytes: int = 25 * 1024 * 1024
    """Largest body taken at all when an artifact store is configured (GitHub's limit is
    25 MB); larger ones get 413."""
    max_large_deliveries: int = Field(default=2, ge=1, le=64)
    """Deliveries above max_body_bytes handled at once per replica (each is held and
    parsed in memory, up to 25 MiB); others wait for a slot within the request timeout."""
    max_large_deliveries_per_namespace: int = Field(default=1, ge=1, le=64)
    """Of those, most held by one namespace at once, so one tenant cannot take them all."""
    rate_per_second: float = 20.0
    """Sustained deliveries per second per key."""
    rate_burst: int = 100
    """Deliveries a key may send at once before the rate applies."""
    request_timeout_seconds: float = 8.0
    """Most time spent on one delivery (GitHub gives up after 10 s)."""
    secret_ttl_seconds: float = 10.0
    """How long a signing secret read from its Secret is reused."""
    api_connections: int = 64
    """Kept-alive connections to the API server for the per-delivery calls (one pool on
    the event loop; deliveries beyond it wait for a free connection)."""
    log_level: str = "INFO"
    log_format: str = Field(default="json", pattern="^(json|text)$")
    """json (one object a line, for log shippers) or text (for local work)."""
    audit_flush_seconds: float = 5.0
    """How often delivery records are written to the artifact store (AMBIENT_STORE_*)."""
    delivery_log: bool = True
    """With a store: export every delivery's record and keep refused requests for replay."""
    keep_ignored_requests: bool = False
    """Also keep the raw request of ignored deliveries for replay (after a policy change
    selects their event); refused and failed ones are always kept."""
    store_timeout_seconds: float = 5.0
    """Most time spent keeping one refused request in the store (the answer waits)."""
    keep_requests_per_second: float = 1.0
    """Refused requests kept per namespace per second (sustained, per replica): whoever
    holds a key without the signing secret can make the store keep no more than this."""
    keep_requests_burst: int = 300
    """Refused requests a namespace may have kept at once before the rate applies."""
