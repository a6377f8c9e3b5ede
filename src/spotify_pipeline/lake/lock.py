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
