"""Ingress settings: every one is also an environment variable AMBIENT_INGRESS_<NAME>."""

from __future__ import annotations

from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Where to listen and how much to accept."""

    model_config = SettingsConfigDict(env_prefix="AMBIENT_INGRESS_")

    host: str = "0.0.0.0"  # noqa: S104 - it is a server; the chart decides exposure
    port: int = 8080
    max_body_bytes: int = 512 * 1024
    """Largest body taken. The payload is kept inside the Session (etcd caps objects at
    1.5 MiB), so until the artifact store exists, larger bodies get 413."""
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
