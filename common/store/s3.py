"""The artifact store as the operator uses it: S3 (or any S3-compatible server) via boto3.

Only the endpoint differs between AWS and a local server, so tests exercise the same code
path as production. Writes are create-only (``If-None-Match: *``): audit batches and
archives are immutable once written.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from ambient.common.store import keys
from ambient.crds.digests import sha256_hex


class StoreSettings(BaseSettings):
    """Where the operator keeps audit exports and archives (env AMBIENT_STORE_*)."""

    model_config = SettingsConfigDict(env_prefix="AMBIENT_STORE_", extra="ignore")

    bucket: str = ""
    """Bucket name; empty disables export (records still go to the structured log)."""
    prefix: str = ""
    """Key prefix inside the bucket."""
    endpoint_url: str | None = None
    """For S3-compatible servers; unset means AWS."""
    region: str = "us-east-1"


class AlreadyExistsError(Exception):
    """The key exists: stored objects are never overwritten."""


class ContentConflictError(Exception):
    """The key exists with different content than what was to be written there."""


class StoreUnavailableError(Exception):
    """The store could not be reached or refused the request; try again later."""


class StoredObject(BaseModel):
    key: str
    size: int = Field(ge=0)


class S3Store:
    """put_new / list_keys / get / delete over one bucket."""

    def __init__(
        self,
        bucket: str,
        *,
        endpoint_url: str | None = None,
        region: str = "us-east-1",
        client: Any = None,
        max_attempts: int = 5,
        connect_timeout: float = 60.0,
        read_timeout: float = 60.0,
    ) -> None:
        # boto3 is imported here, not at module level: it costs the operator about 20 MiB
        # of memory, which only an operator with a configured store should pay.
        import boto3  # noqa: PLC0415
        from botocore.config import Config  # noqa: PLC0415

        self.bucket = bucket
        # Credentials come from the standard chain (env, IRSA, instance profile), never
        # from this process's settings, so they cannot leak into logs with them.
        self._s3 = client or boto3.client(
            "s3",
            endpoint_url=endpoint_url,
            region_name=region,
            config=Config(
                retries={"max_attempts": max_attempts, "mode": "standard"},
                connect_timeout=connect_timeout,
                read_timeout=read_timeout,
            ),
        )

    @classmethod
    def from_settings(cls, settings: StoreSettings) -> S3Store:
        return cls(settings.bucket, endpoint_url=settings.endpoint_url, region=settings.region)

    def put_new(self, key: str, body: bytes) -> None:
        from botocore.exceptions import ClientError  # noqa: PLC0415

        try:
            self._s3.put_object(Bucket=self.bucket, Key=key, Body=body, IfNoneMatch="*")
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in (
                "PreconditionFailed",
                "ConditionalRequestConflict",
            ):
                raise AlreadyExistsError(key) from exc
            raise

    def put_once(self, key: str, body: bytes) -> bool:
        """Write ``body`` at a deterministic key exactly once: True when written now, False
        when the same content was already there (a retry, a redelivery, a re-run after a
        crash). Different content at the key raises ContentConflictError; an unreachable
        store raises StoreUnavailableError. The sha256 rides in the object's metadata so a
        repeat is recognised without reading a large body back."""
        from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415

        digest = sha256_hex(body)
        try:
            self._s3.put_object(
                Bucket=self.bucket,
                Key=key,
                Body=body,
                IfNoneMatch="*",
                Metadata={"sha256": digest},
            )
            return True
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") not in (
                "PreconditionFailed",
                "ConditionalRequestConflict",
            ):
                raise StoreUnavailableError(f"the store refused the write of {key}") from exc
        except BotoCoreError as exc:
            raise StoreUnavailableError(
                f"the store cannot be reached: {type(exc).__name__}"
            ) from exc
        try:
            head = self._s3.head_object(Bucket=self.bucket, Key=key)
            stored = (head.get("Metadata") or {}).get("sha256") or sha256_hex(self.get(key))
        except (ClientError, BotoCoreError) as exc:
            raise StoreUnavailableError(f"the store cannot be read back: {key}") from exc
        if stored != digest:
            raise ContentConflictError(
                f"{key} already holds different content (sha256 {stored}, not {digest})"
            )
        return False

    def location(self, key: str) -> str:
        """The s3:// URI of a key in this bucket."""
        return keys.location(self.bucket, key)

    def list_keys(self, prefix: str) -> list[str]:
        keys: list[str] = []
        paginator = self._s3.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
            keys.extend(item["Key"] for item in page.get("Contents", []))
        return sorted(keys)

    def get(self, key: str) -> bytes:
        body: bytes = self._s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        return body

    def delete(self, key: str) -> None:
        self._s3.delete_object(Bucket=self.bucket, Key=key)
