"""The lake on S3: the same `Storage` interface; raw objects are never overwritten (If-None-Match: *)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..errors import LakeError


def aws_endpoint() -> str | None:
    """An S3/Glue/Athena endpoint override (AWS_ENDPOINT_URL), e.g. a local moto server in tests."""
    return os.environ.get("AWS_ENDPOINT_URL") or None


def split_s3_uri(uri: str) -> tuple[str, str]:
    rest = uri.removeprefix("s3://")
    bucket, _, prefix = rest.partition("/")
    if not bucket:
        raise LakeError(f"invalid S3 lake {uri!r}", hint="use s3://bucket/prefix")
    return bucket, prefix.strip("/")


class S3Storage:
    def __init__(self, uri: str, client: Any = None) -> None:
        import boto3

        self.bucket, self.prefix = split_s3_uri(uri)
        self.client = client or boto3.client("s3", endpoint_url=aws_endpoint())
        self.root_uri = f"s3://{self.bucket}/{self.prefix}".rstrip("/")

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def write_atomic(self, key: str, data: bytes, *, overwrite: bool = False) -> None:
        """One PUT is atomic on S3; without `overwrite` it is conditional, so an existing object is kept."""
        if self._put(key, data, exclusive=not overwrite) is None:
            raise LakeError(f"refusing to overwrite {key} in the lake", hint="raw files are immutable")

    def _put(self, key: str, data: bytes, *, exclusive: bool) -> str | None:
        """PUT `key` (with `exclusive`, only if it does not exist: If-None-Match: *); its ETag, or None when
        an exclusive PUT found the key taken."""
        from botocore.exceptions import BotoCoreError, ClientError

        extra = {"IfNoneMatch": "*"} if exclusive else {}
        try:
            response = self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data, **extra)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if exclusive and code in ("PreconditionFailed", "ConditionalRequestConflict"):
                return None
            raise LakeError(
                f"cannot write s3://{self.bucket}/{self._key(key)}: {code or exc}",
                hint="check the bucket, the prefix and the IAM permissions",
            ) from exc
        except BotoCoreError as exc:
            raise LakeError(f"cannot write s3://{self.bucket}/{self._key(key)}: {exc}") from exc
        return str(response["ETag"])

    def read(self, key: str) -> bytes:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return bytes(self.client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"].read())
        except (ClientError, BotoCoreError) as exc:
            raise LakeError(f"cannot read s3://{self.bucket}/{self._key(key)}: {exc}") from exc

    def exists(self, key: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self.client.head_object(Bucket=self.bucket, Key=self._key(key))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise LakeError(f"cannot read s3://{self.bucket}/{self._key(key)}: {exc}") from exc
        return True

    def size(self, key: str) -> int | None:
        from botocore.exceptions import ClientError

        try:
            response = self.client.head_object(Bucket=self.bucket, Key=self._key(key))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise LakeError(f"cannot read s3://{self.bucket}/{self._key(key)}: {exc}") from exc
        return int(response["ContentLength"])

    def list(self, prefix: str) -> list[str]:
        """Every key under `prefix`, sorted (all pages of ListObjectsV2)."""
        keys = []
        start = self._key(prefix)
        cut = len(self.prefix) + 1 if self.prefix else 0
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=start):
            keys += [obj["Key"][cut:] for obj in page.get("Contents", [])]
        return sorted(keys)

    def local_path(self, key: str) -> Path | None:
        return None

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{self._key(key)}"

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self._key(key))

    def create_exclusive(self, key: str, data: bytes) -> str | None:
        """Create `key` only if it does not exist (If-None-Match: *): its ETag, or None when it exists."""
        return self._put(key, data, exclusive=True)

    def read_with_etag(self, key: str) -> tuple[bytes, str] | None:
        """The object and its ETag, or None when it does not exist."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            response = self.client.get_object(Bucket=self.bucket, Key=self._key(key))
            return bytes(response["Body"].read()), str(response["ETag"])
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise LakeError(f"cannot read s3://{self.bucket}/{self._key(key)}: {exc}") from exc
        except BotoCoreError as exc:
            raise LakeError(f"cannot read s3://{self.bucket}/{self._key(key)}: {exc}") from exc

    def delete_if_match(self, key: str, etag: str) -> bool:
        """Delete `key` only if its ETag is still `etag` (If-Match); False when it is gone or was replaced."""
        from botocore.exceptions import ClientError

        try:
            self.client.delete_object(Bucket=self.bucket, Key=self._key(key), IfMatch=etag)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in ("PreconditionFailed", "412", "404", "NoSuchKey", "NotFound", "ConditionalRequestConflict"):
                return False
            raise LakeError(f"cannot delete s3://{self.bucket}/{self._key(key)}: {code or exc}") from exc
        return True


def s3_filesystem() -> Any:
    """An fsspec S3 filesystem for DuckDB (its httpfs extension cannot be downloaded everywhere)."""
    import s3fs

    endpoint = aws_endpoint()
    return s3fs.S3FileSystem(client_kwargs={"endpoint_url": endpoint} if endpoint else {})
