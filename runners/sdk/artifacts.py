"""Artifact stores: s3 (boto3), pvc (a mounted claim) and external (references only).

Each ``put`` returns the GeneratedArtifact to record: type, location, size, sha256
checksum and createdAt. The s3 path is the same boto3 code path as AWS; an S3-compatible
server differs only by AWS_ENDPOINT_URL_S3. Credentials come from the standard AWS
variables, which the runner's pod gets from a Secret.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
from pathlib import Path
from typing import Any

from ambient.crds.models import GeneratedArtifact
from ambient.runners.sdk.contract import ARTIFACTS_MOUNT, ContractError, artifact_key, now_rfc3339

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,200}$")


def check_name(name: str) -> str:
    """Artifact names are relative paths without '..', so keys stay under the prefix."""
    if not _NAME.fullmatch(name) or ".." in name.split("/"):
        raise ContractError(
            f"artifact name {name!r} must be a relative path of letters, digits, '.', '_', "
            "'-' and '/', without '..'"
        )
    return name


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def split_location(location: str) -> tuple[str, str]:
    """'bucket/prefix' or 's3://bucket/prefix' → (bucket, prefix)."""
    loc = location.removeprefix("s3://").strip("/")
    bucket, _, prefix = loc.partition("/")
    return bucket, prefix


class S3Store:
    """Uploads to a bucket: the Session's storage.location, else AMBIENT_S3_BUCKET/PREFIX."""

    def __init__(self, location: str, namespace: str, session: str) -> None:
        bucket, prefix = split_location(location)
        if not bucket:
            bucket = os.environ.get("AMBIENT_S3_BUCKET", "")
            prefix = os.environ.get("AMBIENT_S3_PREFIX", "")
        if not bucket:
            raise ContractError(
                "no S3 bucket: set spec.artifacts.storage.location to 'bucket/prefix' or "
                "the namespace default AMBIENT_S3_BUCKET"
            )
        self.bucket, self.prefix = bucket, prefix
        self.namespace, self.session = namespace, session
        import boto3  # noqa: PLC0415 - only runners that store in S3 need boto3 installed

        self.client: Any = boto3.client("s3")

    def put(self, name: str, path: Path, kind: str = "output") -> GeneratedArtifact:
        key = artifact_key(self.prefix, self.namespace, self.session, check_name(name))
        checksum = sha256_file(path)
        with path.open("rb") as fh:
            self.client.put_object(
                Bucket=self.bucket, Key=key, Body=fh, Metadata={"sha256": checksum}
            )
        return GeneratedArtifact(
            type=kind,
            location=f"s3://{self.bucket}/{key}",
            size=path.stat().st_size,
            checksum=f"sha256:{checksum}",
            created_at=now_rfc3339(),
        )


class PvcStore:
    """Copies into the mounted claim under <namespace>/<session>/ and records the file."""

    def __init__(self, claim: str, namespace: str, session: str) -> None:
        self.claim = claim or "artifacts"
        self.root = Path(os.environ.get("AMBIENT_PVC_MOUNT", ARTIFACTS_MOUNT))
        self.namespace, self.session = namespace, session

    def put(self, name: str, path: Path, kind: str = "output") -> GeneratedArtifact:
        rel = artifact_key("", self.namespace, self.session, check_name(name))
        target = self.root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if path.resolve() != target.resolve():
            shutil.copyfile(path, target)
        return GeneratedArtifact(
            type=kind,
            location=f"pvc://{self.claim}/{rel}",
            size=target.stat().st_size,
            checksum=f"sha256:{sha256_file(target)}",
            created_at=now_rfc3339(),
        )


class ExternalStore:
    """References only: the runner names where it put something; nothing is copied."""

    def __init__(self, base: str) -> None:
        self.base = base.rstrip("/")

    def put(self, name: str, path: Path, kind: str = "output") -> GeneratedArtifact:
        raise ContractError(
            "storage type 'external' keeps references only; use Runner.reference(location)"
        )

    def reference(self, location: str, kind: str = "output") -> GeneratedArtifact:
        return GeneratedArtifact(type=kind, location=location, created_at=now_rfc3339())


Store = S3Store | PvcStore | ExternalStore


def read_s3(location: str, client: Any = None) -> bytes:
    """The bytes at an s3://bucket/key location (a payloadRef, a history archive), with
    the runner's S3 credentials (the standard AWS variables)."""
    if not location.startswith("s3://"):
        raise ContractError(f"{location!r} is not an s3:// location")
    bucket, key = split_location(location)
    if not bucket or not key:
        raise ContractError(f"{location!r} names no bucket and key")
    if client is None:
        import boto3  # noqa: PLC0415

        client = boto3.client("s3")
    body: bytes = client.get_object(Bucket=bucket, Key=key)["Body"].read()
    return body


def open_store(storage: dict[str, str], namespace: str, session: str) -> Store:
    """The store the Session's spec.artifacts.storage names."""
    kind = storage.get("type", "s3")
    if kind == "s3":
        return S3Store(storage.get("location", ""), namespace, session)
    if kind == "pvc":
        return PvcStore(storage.get("location", ""), namespace, session)
    if kind == "external":
        return ExternalStore(storage.get("location", ""))
    raise ContractError(f"unknown artifact storage type {kind!r}: use s3, pvc or external")
