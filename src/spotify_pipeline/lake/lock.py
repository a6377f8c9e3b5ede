"""One run at a time per lake: an exclusive lock file, recovered automatically when its owner died."""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import json
import os
import socket
from pathlib import Path
from types import TracebackType
from typing import Any

from ..errors import LakeError
from .storage import os_error_hint

LOCK_NAME = "_state/run.lock"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class LakeLock:
    """`with LakeLock(root, "run"):` holds the lake for one command; a second one is refused cleanly.

    The lock file records pid, host and start time. A lock whose process no longer exists on this host is
    stale (the run was killed) and is taken over.
    """

    def __init__(self, root: Path, command: str) -> None:
        self.path = root / LOCK_NAME
        self.command = command
        self.recovered_from: dict[str, object] | None = None

    def __enter__(self) -> LakeLock:
        me = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "command": self.command,
            "started_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        }
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise LakeError(
                f"cannot create {self.path.parent}: {exc.strerror}", hint="check the lake path and its permissions"
            ) from exc
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                holder = self._holder()
                if holder is not None and self._is_stale(holder):
                    self.recovered_from = holder
                    with contextlib.suppress(FileNotFoundError):
                        self.path.unlink()
                    continue
                if holder is None:
                    continue  # the holder just finished
                raise LakeError(
                    f"another {holder.get('command', 'run')} (pid {holder.get('pid')} on {holder.get('host')}, "
                    f"started {holder.get('started_at')}) is using the lake {self.path.parent.parent}",
                    hint="wait for it to finish; runs on one lake never overlap",
                ) from None
            except OSError as exc:
                if exc.errno in (errno.EACCES, errno.EROFS, errno.EPERM):
                    raise LakeError(
                        f"cannot lock the lake at {self.path}: {exc.strerror}", hint="the lake folder is not writable"
                    ) from exc
                raise
            try:
                with os.fdopen(fd, "w") as handle:
                    json.dump(me, handle)
            except OSError as exc:
                with contextlib.suppress(OSError):
                    self.path.unlink()
                raise LakeError(
                    f"cannot write the lake lock {self.path}: {exc.strerror}", hint=os_error_hint(exc)
                ) from exc
            return self
        raise LakeError(f"could not take the lake lock {self.path}", hint="try again")

    def _holder(self) -> dict[str, object] | None:
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            return {"pid": -1, "host": socket.gethostname(), "corrupt": True}
        return data if isinstance(data, dict) else {"pid": -1, "host": socket.gethostname()}

    @staticmethod
    def _is_stale(holder: dict[str, object]) -> bool:
        if holder.get("host") != socket.gethostname():
            return False  # cannot tell whether a process on another host is alive
        pid = holder.get("pid")
        return not isinstance(pid, int) or pid <= 0 or not _alive(pid)

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


class S3LakeLock:
    """The same guarantee on S3: a lock object created with a conditional PUT (If-None-Match: *).
    A lock older than `stale_after_s` (longer than any Lambda can run) belongs to a dead run."""

    def __init__(self, storage: Any, command: str, stale_after_s: float = 3600.0) -> None:
        self.storage = storage
        self.command = command
        self.stale_after_s = stale_after_s

    def __enter__(self) -> S3LakeLock:
        me = {
            "command": self.command,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "started_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        }
        for _ in range(2):
            try:
                self.storage.write_atomic(LOCK_NAME, json.dumps(me).encode())
                return self
            except LakeError:
                holder = json.loads(self.storage.read(LOCK_NAME))
                started = dt.datetime.fromisoformat(str(holder.get("started_at")))
                if (dt.datetime.now(dt.UTC) - started).total_seconds() > self.stale_after_s:
                    self.storage.delete(LOCK_NAME)
                    continue
                raise LakeError(
                    f"another {holder.get('command', 'run')} (on {holder.get('host')}, started "
                    f"{holder.get('started_at')}) is using the lake",
                    hint="wait for it to finish",
                ) from None
        raise LakeError("could not take the lake lock on S3", hint="try again")

    def __exit__(self, *exc: object) -> None:
        self.storage.delete(LOCK_NAME)
