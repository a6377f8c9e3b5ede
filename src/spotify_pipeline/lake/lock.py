"""One run at a time per lake: an OS lock on `_state/run.lock`, which the kernel frees when its owner dies.

Local lakes use `flock` on the lock file: taking it is one atomic system call, so of any number of processes
started at once exactly one holds it, and a killed run holds nothing (no guessing whether it is stale). The
holder writes its pid, host, command and start time into the file for the refusal message, and deletes the
file when it finishes, after checking the file is still the one it locked. A file left behind is a run that
died: the next one takes it over and reports it (`recovered_from`).

S3 has no locks: `S3LakeLock` creates the lock object with a conditional PUT (If-None-Match: *) and deletes
it only if its ETag is still the one it wrote (If-Match), so a run never removes another run's lock.
"""

from __future__ import annotations

import datetime as dt
import errno
import fcntl
import json
import os
import secrets
import socket
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from ..errors import LakeError
from .storage import os_error_hint

LOCK_NAME = "_state/run.lock"
HOLDER_WAIT_S = 1.0  # how long a refused run waits for a brand-new holder to write its details
HOLDER_MAX_BYTES = 65536  # of a lock file read: a holder's details are ~150 bytes


def _holder_details(command: str) -> dict[str, object]:
    return {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "command": command,
        "started_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }


def _refusal(holder: dict[str, Any] | None, where: str) -> LakeError:
    if holder is None:
        return LakeError(f"another command is using the lake {where}", hint="wait for it to finish")
    return LakeError(
        f"another {holder.get('command', 'run')} (pid {holder.get('pid')} on {holder.get('host')}, "
        f"started {holder.get('started_at')}) is using the lake {where}",
        hint="wait for it to finish; runs on one lake never overlap",
    )


class LakeLock:
    """`with LakeLock(root, "run"):` holds the lake for one command; a second one is refused cleanly."""

    def __init__(self, root: Path, command: str) -> None:
        self.path = root / LOCK_NAME
        self.command = command
        self.recovered_from: dict[str, object] | None = None
        self._fd: int | None = None

    def __enter__(self) -> LakeLock:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise LakeError(
                f"cannot create {self.path.parent}: {exc.strerror}", hint="check the lake path and its permissions"
            ) from exc
        for _ in range(100):
            fd = self._open()
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = self._wait_for_holder(fd)
                os.close(fd)
                raise _refusal(holder, str(self.path.parent.parent)) from None
            except OSError as exc:
                os.close(fd)
                raise LakeError(
                    f"cannot lock the lake at {self.path}: {exc.strerror}",
                    hint="the lake's file system does not support locks (flock): use a local disk",
                ) from exc
            if self._is_current(fd):
                break
            os.close(fd)  # its holder finished and deleted it between our open and our lock: start again
        else:
            raise LakeError(f"could not take the lake lock {self.path}", hint="try again")
        previous = _parse(os.pread(fd, HOLDER_MAX_BYTES, 0))
        if previous is not None or os.fstat(fd).st_size:
            self.recovered_from = previous or {"corrupt": True}  # a holder that died without releasing
        data = json.dumps(_holder_details(self.command)).encode()
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, data, 0)
        except OSError as exc:
            self._release(fd)
            raise LakeError(f"cannot write the lake lock {self.path}: {exc.strerror}", hint=os_error_hint(exc)) from exc
        self._fd = fd
        return self

    def _open(self) -> int:
        try:
            return os.open(self.path, os.O_CREAT | os.O_RDWR, 0o644)
        except OSError as exc:
            if exc.errno in (errno.EACCES, errno.EROFS, errno.EPERM):
                raise LakeError(
                    f"cannot lock the lake at {self.path}: {exc.strerror}", hint="the lake folder is not writable"
                ) from exc
            raise LakeError(f"cannot lock the lake at {self.path}: {exc.strerror}", hint=os_error_hint(exc)) from exc

    def _is_current(self, fd: int) -> bool:
        """Whether `fd` is the file at `self.path` now (not one its holder deleted, or a newer one)."""
        try:
            on_disk = os.stat(self.path)
        except FileNotFoundError:
            return False
        mine = os.fstat(fd)
        return (mine.st_dev, mine.st_ino) == (on_disk.st_dev, on_disk.st_ino)

    @staticmethod
    def _wait_for_holder(fd: int) -> dict[str, Any] | None:
        """The holder's details; a holder that has just taken the lock writes them a moment later."""
        deadline = time.monotonic() + HOLDER_WAIT_S
        while True:
            holder = _parse(os.pread(fd, HOLDER_MAX_BYTES, 0))
            if holder is not None or time.monotonic() > deadline:
                return holder
            time.sleep(0.02)

    def _release(self, fd: int) -> None:
        """Delete the lock file only if it is still ours, then unlock (by closing)."""
        try:
            if self._is_current(fd):
                try:
                    self.path.unlink()
                except OSError:
                    os.ftruncate(fd, 0)  # cannot delete (read-only folder?): at least leave no holder behind
        except OSError:
            pass
        finally:
            os.close(fd)

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            self._release(fd)


def _parse(data: bytes) -> dict[str, Any] | None:
    try:
        value = json.loads(data)
    except (ValueError, RecursionError):  # RecursionError: arrays nested past Python's limit ("[[[[...")
        return None
    return value if isinstance(value, dict) else None


class S3LakeLock:
    """The same guarantee on S3: a lock object created with a conditional PUT (If-None-Match: *) and deleted
    with a conditional DELETE (If-Match: its ETag; the object holds a random token, so no two runs' locks
    share one). A lock older than `stale_after_s` (longer than any Lambda can run) belongs to a dead run."""

    def __init__(self, storage: Any, command: str, stale_after_s: float = 3600.0) -> None:
        self.storage = storage
        self.command = command
        self.stale_after_s = stale_after_s
        self.recovered_from: dict[str, object] | None = None
        self._etag: str | None = None

    def __enter__(self) -> S3LakeLock:
        data = json.dumps({**_holder_details(self.command), "token": secrets.token_hex(8)}).encode()
        for _ in range(3):
            etag = self.storage.create_exclusive(LOCK_NAME, data)
            if etag is not None:
                self._etag = etag
                return self
            found = self.storage.read_with_etag(LOCK_NAME)
            if found is None:
                continue  # its holder just finished
            body, found_etag = found
            holder = _parse(body)
            if holder is None or self._is_stale(holder):
                # Only the lock we looked at goes: if another run took it over meanwhile, its lock stays.
                self.storage.delete_if_match(LOCK_NAME, found_etag)
                self.recovered_from = holder or {"corrupt": True}
                continue
            raise _refusal(holder, self.storage.root_uri)
        raise LakeError("could not take the lake lock on S3", hint="try again")

    def _is_stale(self, holder: dict[str, Any]) -> bool:
        try:
            started = dt.datetime.fromisoformat(str(holder.get("started_at")))
            return (dt.datetime.now(dt.UTC) - started).total_seconds() > self.stale_after_s
        except (ValueError, TypeError):
            return True  # no readable start time: not a lock this code wrote

    def __exit__(self, *exc: object) -> None:
        if self._etag is not None:
            etag, self._etag = self._etag, None
            self.storage.delete_if_match(LOCK_NAME, etag)
