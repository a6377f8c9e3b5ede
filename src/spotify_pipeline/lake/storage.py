"""One small storage interface, so the extractor and the raw zone do not care where the lake lives."""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from pathlib import Path
from typing import Protocol

from ..errors import LakeError
from ..reliability.crashpoints import crash_point


class Storage(Protocol):
    """Keys are `/`-separated paths relative to the lake root."""

    def write_atomic(self, key: str, data: bytes, *, overwrite: bool = False) -> None:
        """Write all of `data` or nothing; refuse to replace an existing key unless `overwrite`."""

    def read(self, key: str) -> bytes: ...

    def exists(self, key: str) -> bool: ...

    def delete(self, key: str) -> None:
        """Remove `key` if it exists (never used on the raw zone)."""

    def size(self, key: str) -> int | None:
        """The size of `key` in bytes, or None when it does not exist."""

    def list(self, prefix: str) -> list[str]:
        """Every key under `prefix`, sorted."""

    def local_path(self, key: str) -> Path | None:
        """A filesystem path for `key` when the lake is on local disk, else None."""

    def uri(self, key: str) -> str:
        """Where DuckDB reads `key`: a local path or an s3:// URI."""


class LocalStorage:
    """A folder on disk. Writes go to a temporary file in the same folder, fsync, then rename."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, key: str) -> Path:
        if key.startswith("/") or ".." in key.split("/"):
            raise LakeError(f"invalid lake key {key!r}")
        return self.root / key

    def write_atomic(self, key: str, data: bytes, *, overwrite: bool = False) -> None:
        path = self._path(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
            try:
                with os.fdopen(fd, "wb") as handle:
                    handle.write(data)
                    handle.flush()
                    os.fsync(handle.fileno())
                if key.startswith("raw/"):
                    crash_point("raw.temp_written")
                if overwrite:
                    os.replace(tmp, path)
                else:
                    os.link(tmp, path)  # fails if the key exists: the raw zone is never rewritten
                    os.unlink(tmp)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
        except FileExistsError as exc:
            raise LakeError(f"refusing to overwrite {key} in the lake", hint="raw files are immutable") from exc
        except OSError as exc:
            raise LakeError(f"cannot write {path}: {_describe(exc)}", hint=_hint(exc)) from exc

    def read(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except OSError as exc:
            raise LakeError(f"cannot read {self._path(key)}: {_describe(exc)}") from exc

    def exists(self, key: str) -> bool:
        return self._path(key).exists()

    def delete(self, key: str) -> None:
        if key.startswith("raw/"):
            raise LakeError(f"refusing to delete {key}", hint="raw files are immutable")
        try:
            self._path(key).unlink(missing_ok=True)
        except OSError as exc:
            raise LakeError(f"cannot delete {self._path(key)}: {_describe(exc)}", hint=_hint(exc)) from exc

    def size(self, key: str) -> int | None:
        try:
            return self._path(key).stat().st_size
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise LakeError(f"cannot read {self._path(key)}: {_describe(exc)}") from exc

    def list(self, prefix: str) -> list[str]:
        base = self._path(prefix.rstrip("/")) if prefix.rstrip("/") else self.root
        if not base.exists():
            return []
        keys = [p.relative_to(self.root).as_posix() for p in base.rglob("*") if p.is_file()]
        return sorted(k for k in keys if k.startswith(prefix) and not k.rsplit("/", 1)[-1].startswith("."))

    def local_path(self, key: str) -> Path | None:
        return self._path(key)

    def uri(self, key: str) -> str:
        return str(self._path(key))


def _describe(exc: OSError) -> str:
    return exc.strerror or str(exc)


def os_error_hint(exc: OSError) -> str:
    """What to do about a failed lake write."""
    return _hint(exc)


def _hint(exc: OSError) -> str:
    if exc.errno == errno.ENOSPC:
        return "the disk is full: free space or point --lake elsewhere; nothing already stored was changed"
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return "the lake folder is not writable: fix its permissions or point --lake elsewhere"
    return "check the lake path (--lake or SPOTIFY_PIPELINE_LAKE)"


def open_storage(lake: str) -> Storage:
    """The storage behind a lake location: a folder path, or s3://bucket/prefix."""
    if lake.startswith("s3://"):
        from .s3 import S3Storage

        return S3Storage(lake)
    if "://" in lake and not lake.startswith("file://"):
        raise LakeError(f"unsupported lake location {lake!r}", hint="use a folder path or s3://bucket/prefix")
    root = Path(lake.removeprefix("file://")).expanduser()
    if root.exists() and not root.is_dir():
        raise LakeError(f"lake path {root} is a file, not a folder", hint="point --lake at a folder")
    return LocalStorage(root)
