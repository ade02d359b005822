"""The artifact store as the operator uses it: S3 (or any S3-compatible server) via boto3.

Only the endpoint differs between AWS and a local server, so tests exercise the same code
path as production. Writes are create-only (``If-None-Match: *``): audit batches and
archives are immutable once written.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


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
            config=Config(retries={"max_attempts": 5, "mode": "standard"}),
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
