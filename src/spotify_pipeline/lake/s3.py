"""The lake on S3: the same `Storage` interface; raw objects are never overwritten (If-None-Match: *)."""

from __future__ import annotations

import datetime as dt
import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import LakeError

log = logging.getLogger(__name__)
S3_DELETE_MAX = 1000  # keys per DeleteObjects request (the S3 limit)


@dataclass(frozen=True)
class S3Object:
    """One listed object: its key (relative to the lake's prefix), size and LastModified (aware UTC)."""

    key: str
    size: int
    last_modified: dt.datetime


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

    def list_objects(self, prefix: str) -> Iterator[S3Object]:
        """Every object under `prefix` with its size and LastModified, in key order, page by page
        (ListObjectsV2), so a large warehouse is never held in memory at once."""
        from botocore.exceptions import BotoCoreError, ClientError

        cut = len(self.prefix) + 1 if self.prefix else 0
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self._key(prefix))
        try:
            for page in pages:
                for obj in page.get("Contents", []):
                    yield S3Object(obj["Key"][cut:], int(obj["Size"]), obj["LastModified"])
        except (ClientError, BotoCoreError) as exc:
            raise LakeError(f"cannot list s3://{self.bucket}/{self._key(prefix)}: {exc}") from exc

    def delete_many(self, keys: Sequence[str]) -> set[str]:
        """Delete up to 1,000 keys in one DeleteObjects request; the keys S3 could not delete (with a
        warning each), so a caller counts only what went."""
        from botocore.exceptions import BotoCoreError, ClientError

        if not keys:
            return set()
        if len(keys) > S3_DELETE_MAX:
            raise ValueError(f"DeleteObjects takes at most {S3_DELETE_MAX} keys, not {len(keys)}")
        request = {"Objects": [{"Key": self._key(k)} for k in keys], "Quiet": True}
        try:
            response = self.client.delete_objects(Bucket=self.bucket, Delete=request)
        except (ClientError, BotoCoreError) as exc:
            raise LakeError(
                f"cannot delete objects under s3://{self.bucket}/{self.prefix}: {exc}",
                hint="check the IAM permissions (s3:DeleteObject)",
            ) from exc
        cut = len(self.prefix) + 1 if self.prefix else 0
        failed = set()
        for error in response.get("Errors", []):
            log.warning("cannot delete s3://%s/%s: %s", self.bucket, error.get("Key"), error.get("Code"))
            failed.add(str(error.get("Key", ""))[cut:])
        return failed

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

    from ..tables.files import glob_unescaped

    class LiteralGlobS3(s3fs.S3FileSystem):  # type: ignore[misc]  # s3fs has no type hints
        """DuckDB asks fsspec to glob every path it reads. A path whose glob characters are all escaped
        (`sql_path`) names one object: it is looked up as such, as a path without any is, rather than by
        listing every key under the prefix before its first `[` (slow, and stale in fsspec's listing
        cache once new files are written)."""

        async def _glob(self, path: str, maxdepth: int | None = None, **kwargs: Any) -> Any:
            literal = glob_unescaped(path)
            if literal is None or literal == path or kwargs.get("detail"):
                return await super()._glob(path, maxdepth=maxdepth, **kwargs)
            literal = self._strip_protocol(literal)
            return [literal] if await self._exists(literal) else []

    endpoint = aws_endpoint()
    return LiteralGlobS3(client_kwargs={"endpoint_url": endpoint} if endpoint else {})
