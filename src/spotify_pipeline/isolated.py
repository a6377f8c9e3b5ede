"""Run one call in a short-lived child process, so what the call leaves in memory leaves with the process.

Why: a transform in a long-lived process (`poll`) leaves ~0.2-1 MiB of native memory behind per run (DuckDB,
Arrow, glibc arenas; measured in bench/memory_growth.py, docs/BENCHMARKS.md) that no `gc.collect()` or
`malloc_trim` hands back; over weeks of 5-minute polls the OOM killer would end the capture. A CLI run or a
Lambda starts afresh each time; `in_child` gives a long-lived process the same property.

    report = in_child(pipeline.run, settings, [], sources=["recently-played"])

The child is `python -c ...` started in a session of its own, so a terminal's Ctrl-C reaches only the
parent, which forwards exactly one signal: the child stops its run as the CLI would (recorded
`interrupted`), reports back, and the parent re-raises the `Interrupted`; a second signal kills the child at
once. The call and its arguments go to the child pickled over a socket pair, and its result or exception
comes back the same way: only module-level functions and picklable values cross. An exception that cannot be
rebuilt on this side comes back as a `PipelineError` with the same message and exit code. The child logs as
this process does (the package logger's level and stderr formats, e.g. `--log-format json`). The child is
always waited for: none is left behind.
"""

from __future__ import annotations

import contextlib
import copy
import ctypes
import logging
import multiprocessing.connection
import os
import signal
import socket

# Only to start this interpreter on our own code (in_child): no shell, no outside input in the command.
import subprocess  # nosec B404
import sys
from collections.abc import Callable
from typing import Any, TypeVar

from .errors import Interrupted, PipelineError

T = TypeVar("T")

_CHILD = "import sys; from spotify_pipeline.isolated import _serve; _serve(int(sys.argv[1]), int(sys.argv[2]))"
_SIGNALS = (signal.SIGINT, signal.SIGTERM)
_REASONS = {signal.SIGINT: "interrupted by the user (Ctrl-C)", signal.SIGTERM: "terminated (SIGTERM)"}


def in_child(func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """`func(*args, **kwargs)` in a fresh child process: its return value, or its exception raised here."""
    parent_end, child_end = socket.socketpair()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}  # what this process imports
    try:
        # The child is this interpreter running our own code: no shell, no outside input in the command.
        process = subprocess.Popen(  # nosec B603
            [sys.executable, "-c", _CHILD, str(child_end.fileno()), str(os.getpid())],
            pass_fds=(child_end.fileno(),),
            start_new_session=True,  # a terminal's Ctrl-C reaches the parent only; it forwards one signal
            env=env,
        )
    finally:
        child_end.close()
    conn = multiprocessing.connection.Connection(parent_end.detach())
    try:
        conn.send((func, args, kwargs, _log_setup()))
        return _outcome(_wait(conn, process))  # type: ignore[no-any-return]
    finally:
        conn.close()
        if process.poll() is None:
            process.kill()
        process.wait()


def _wait(conn: multiprocessing.connection.Connection, process: subprocess.Popen[bytes]) -> tuple[str, Any]:
    """The child's message; a stop signal meanwhile is forwarded once (the child stops and reports), a
    second kills it. A child that dies without a word is a PipelineError."""
    forwarded = False
    while True:
        try:
            if conn.poll(0.2) or (process.poll() is not None and conn.poll(0)):  # a last word, then the exit
                return conn.recv()  # type: ignore[no-any-return]
            if process.poll() is not None:
                raise _silent_exit(process)
        except EOFError:
            process.wait()
            raise _silent_exit(process) from None
        except KeyboardInterrupt as exc:
            if forwarded:
                process.kill()
                raise
            forwarded = True
            code = getattr(exc, "exit_code", 130)
            process.send_signal(signal.SIGTERM if code == 143 else signal.SIGINT)


def _silent_exit(process: subprocess.Popen[bytes]) -> PipelineError:
    how = f"was killed by signal {-process.returncode}" if process.returncode < 0 else f"exited ({process.returncode})"
    return PipelineError(
        f"the child process {process.pid} {how} before reporting its result",
        hint="see the messages above; a kill by signal 9 is often the OOM killer",
    )


def _outcome(message: tuple[str, Any]) -> Any:
    kind, value = message
    if kind == "ok":
        return value
    raise value


def _serve(fd: int, parent: int) -> None:
    """The child: read the call, run it with stop signals raised as `Interrupted`, send back the outcome.
    A parent that dies without a word (killed, or a second Ctrl-C) sends it SIGTERM (Linux), so it stops
    as it would on a signal instead of running on alone."""
    _stop_with_parent(parent)
    conn = multiprocessing.connection.Connection(fd)
    func, args, kwargs, log_setup = conn.recv()
    _apply_log_setup(*log_setup)

    def on_signal(signum: int, frame: object) -> None:
        for sig in _SIGNALS:  # the next one kills at once, as the CLI's second Ctrl-C does
            signal.signal(sig, signal.SIG_DFL)
        raise Interrupted(_REASONS[signal.Signals(signum)], 128 + signum)

    for sig in _SIGNALS:
        signal.signal(sig, on_signal)
    try:
        try:
            conn.send(("ok", func(*args, **kwargs)))
        except BaseException as exc:  # everything goes back to the caller, who raises it
            try:
                conn.send(("error", _portable(exc)))
            except Exception:  # an attribute that does not pickle: its message and exit code still go back
                conn.send(("error", _plain(exc)))
    except (BrokenPipeError, ConnectionResetError):  # the parent is gone: nobody to tell
        pass
    finally:
        conn.close()


def _log_setup() -> tuple[int, list[logging.Formatter]]:
    """The package logger's level and the formatters of its stderr handlers (`--log-format json`, `--debug`),
    so the child logs as this process does (a handler itself holds a lock and does not pickle)."""
    logger = logging.getLogger("spotify_pipeline")
    formatters = [
        h.formatter or logging.Formatter()
        for h in logger.handlers
        if isinstance(h, logging.StreamHandler) and getattr(h, "stream", None) is sys.stderr
    ]
    return logger.level, formatters


def _apply_log_setup(level: int, formatters: list[logging.Formatter]) -> None:
    logger = logging.getLogger("spotify_pipeline")
    logger.setLevel(level)
    for formatter in formatters:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(formatter)
        logger.addHandler(handler)


def _stop_with_parent(parent: int) -> None:
    """SIGTERM when the parent dies (prctl PR_SET_PDEATHSIG, Linux only; elsewhere nothing)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # 1: PR_SET_PDEATHSIG
    if os.getppid() != parent:  # it died before the line above: stop now
        raise SystemExit(1)


def _portable(exc: BaseException) -> BaseException:
    """`exc` if it can be rebuilt from its pickled form, else a PipelineError with its message and exit code."""
    try:
        copy.copy(exc)  # the same __reduce_ex__ as pickling: a class that cannot be rebuilt fails here
        return exc
    except Exception:
        return _plain(exc)


def _plain(exc: BaseException) -> PipelineError:
    message = str(exc) if isinstance(exc, PipelineError) else f"{type(exc).__name__}: {exc}"
    plain = PipelineError(message)
    plain.exit_code = getattr(exc, "exit_code", 1)
    return plain
