"""`serve`'s query engine in a worker process, replaced every `recycle_after` table changes.

Why: the dashboard runs for months and reopens its engine (every table loaded into an in-memory DuckDB)
each time the tables change. Each reopen leaves ~0.1 MiB (10k items) to ~1 MiB of native memory behind that
no Python object holds and no `malloc_trim` hands back (DuckDB, glibc arenas; docs/BENCHMARKS.md, "Memory of
a long-lived process"). As gunicorn's `max_requests` does for a leaky app, the worker holding the engine is
replaced after a number of reopens, and what it kept leaves with it; the dashboard's own process never
loads a table. A worker that dies (the OOM killer) is replaced by the next query.

    parent (Dashboard, HTTP threads, one lock)            worker (`python -c ...`, a session of its own)
      EngineProcess.open()        --("open",)-->           close the old QueryEngine, open a new one
      EngineProcess.execute(...)  --("execute", ...)-->    QueryEngine.execute: a QueryResult or its error
      EngineProcess.close()       --EOF-->                 exits; the parent waits for it

Only `execute` crosses (the reports, summaries and GraphQL resolvers use nothing else); results and
exceptions come back pickled. The sandbox, time limit and memory limit are the engine's own, in the worker.
"""

from __future__ import annotations

import contextlib
import gc
import multiprocessing.connection
import os
import socket

# Only to start this interpreter on our own code: no shell, no outside input in the command.
import subprocess  # nosec B404
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from ..errors import LakeError, PipelineError
from ..isolated import _portable
from ..query.consistent import Snapshots, consistent_snapshots
from ..query.engine import QueryEngine, QueryResult
from ..tables.catalog import Catalog

_WORKER = (
    "import sys; from spotify_pipeline.serve.engine_process import _serve; _serve(int(sys.argv[1]), int(sys.argv[2]))"
)


class EngineDied(PipelineError):
    """The worker died before answering (the OOM killer, a kill): the query can be asked of a new one."""


@dataclass(frozen=True)
class EngineStats:
    """What a worker holds: its pid, how many engines it has opened, and the DuckDB connections still alive
    in it (1 when each reopen closes and lets go of the previous one)."""

    pid: int
    reopens: int
    connections: int


@dataclass(frozen=True)
class EngineSettings:
    """How the worker opens its engine (picklable: it crosses to the worker)."""

    lake_root: Path
    timeout: float | None
    memory_limit: str | None


class EngineProcess:
    """One worker process holding one `QueryEngine`; not thread-safe (the dashboard calls it under its lock)."""

    def __init__(self, settings: EngineSettings) -> None:
        parent_end, child_end = socket.socketpair()
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}  # what this process imports
        try:
            # This interpreter on our own code: no shell, no outside input in the command.
            self._process = subprocess.Popen(  # nosec B603
                [sys.executable, "-c", _WORKER, str(child_end.fileno()), str(os.getpid())],
                pass_fds=(child_end.fileno(),),
                start_new_session=True,  # a terminal's Ctrl-C stops `serve`, which then closes its worker
                env=env,
            )
        finally:
            child_end.close()
        self._conn = multiprocessing.connection.Connection(parent_end.detach())
        self.reopens = 0
        with contextlib.suppress(OSError):  # it died already (killed as it started): the first call says so
            self._conn.send(settings)

    @property
    def pid(self) -> int:
        return self._process.pid

    @property
    def alive(self) -> bool:
        return self._process.poll() is None

    def open(self) -> bool:
        """(Re)open the engine over the tables' latest consistent snapshots (query/consistent.py: never half a
        publish); False, having kept the engine, when those are the ones it holds."""
        reopened: bool = self._call(("open",))
        self.reopens += reopened
        return reopened

    def execute(
        self, sql: str, params: Sequence[Any] | dict[str, Any] | None = None, *, max_rows: int | None = None
    ) -> QueryResult:
        """`QueryEngine.execute` in the worker."""
        result: QueryResult = self._call(("execute", sql, params, max_rows))
        return result

    def stats(self) -> EngineStats:
        counted: EngineStats = self._call(("stats",))
        return counted

    def close(self) -> None:
        """Stop the worker (its engine goes with it) and wait for it: none is left behind."""
        self._conn.close()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()

    def _call(self, message: tuple[Any, ...]) -> Any:
        try:
            self._conn.send(message)
            while not self._conn.poll(0.2):
                if self._process.poll() is not None and not self._conn.poll(0):
                    raise self._died()
            kind, value = self._conn.recv()
        except (EOFError, OSError):
            self._process.wait()
            raise self._died() from None
        if kind == "ok":
            return value
        raise value

    def _died(self) -> EngineDied:
        code = self._process.returncode
        how = f"was killed by signal {-code}" if code is not None and code < 0 else f"exited ({code})"
        return EngineDied(
            f"the dashboard's query engine (process {self.pid}) {how}; the next query starts a new one",
            hint="a kill by signal 9 is often the OOM killer: lower --memory-limit or add memory",
        )


def _open_engine(settings: EngineSettings, catalog: Catalog, snapshots: Snapshots) -> tuple[QueryEngine, Snapshots]:
    """The engine over `snapshots`, loaded into memory, and the snapshots it holds. A snapshot expired since
    it was chosen (a run's retention right after its publish ended) is no error: the lake has moved on, so
    the engine opens where the lake stands now."""
    try:
        return _engine_at(settings, catalog, snapshots), snapshots
    except LakeError:
        if not catalog.exists():
            raise
    catalog = Catalog(settings.lake_root)
    snapshots = consistent_snapshots(catalog)
    return _engine_at(settings, catalog, snapshots), snapshots


def _engine_at(settings: EngineSettings, catalog: Catalog, snapshots: Snapshots) -> QueryEngine:
    return QueryEngine(
        catalog, in_memory=True, timeout=settings.timeout, memory_limit=settings.memory_limit, snapshots=snapshots
    )


def _serve(fd: int, parent: int) -> None:
    """The worker: open the engine when asked, answer queries, exit when the parent closes the connection or
    dies (the socket's end of file; not PR_SET_PDEATHSIG, which fires when the HTTP thread that started the
    worker ends, not the process)."""
    if os.getppid() != parent:  # the parent died before we started
        return
    conn = multiprocessing.connection.Connection(fd)
    settings: EngineSettings = conn.recv()
    engine: QueryEngine | None = None
    shown: Snapshots = {}  # the snapshots `engine` holds
    reopens = 0
    try:
        while True:
            try:
                message = conn.recv()
            except EOFError:
                return
            try:
                if message[0] == "open":
                    catalog = Catalog(settings.lake_root)
                    snapshots = consistent_snapshots(catalog)
                    answer: Any = engine is None or snapshots != shown
                    if answer:
                        if engine is not None:
                            engine.close()
                            engine = None
                        engine, shown = _open_engine(settings, catalog, snapshots)
                        reopens += 1
                elif message[0] == "execute":
                    if engine is None:
                        raise PipelineError("the query engine was not opened")
                    _, sql, params, max_rows = message
                    answer = engine.execute(sql, params, max_rows=max_rows)
                else:  # stats
                    gc.collect()
                    alive = sum(isinstance(o, duckdb.DuckDBPyConnection) for o in gc.get_objects())
                    answer = EngineStats(os.getpid(), reopens, alive)
                conn.send(("ok", answer))
            except Exception as exc:  # the caller raises it (a QueryError is a 400)
                conn.send(("error", _portable(exc)))
    except (BrokenPipeError, ConnectionResetError):  # the parent is gone: nobody to answer
        pass
    finally:
        if engine is not None:
            engine.close()
        conn.close()
