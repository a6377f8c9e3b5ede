"""The strict check and Arrow part of a large download's files in worker processes, each with its own GIL.

On threads (importer.py `_fast_on_threads`) the strict msgspec decode and the Arrow columns built from it
hold the GIL: ~3.3 of the ~4.2 CPU s of checking 1M plays, so two threads kept about 1.3 cores busy and
the phase took 3.5-3.9 s of wall (docs/BENCHMARKS.md, Round 7). Here each file is read once, hashed,
checked and made into its raw part by one of `WORKERS` processes; only the outcome (plays, whether the part
was written, sha256, size) comes back. A file the check refuses, or whose part Arrow declines, is left to
the importing process exactly as on threads, so both paths accept, refuse and write the same.

The processes come from a forkserver: a fresh interpreter that imports this module once and forks each
worker from itself. Forking the importing process instead would copy its DuckDB and hashing threads mid-
flight (and its memory: Round 6 measured +0.5 CPU s of copy-on-write faults). The forkserver stays for the
life of the importing process (~0.15 CPU s to start, once; ~64 MiB); the workers end with the phase. It is
started as soon as the files to check are known (`start`), before the pool's first job, so that its imports
run while the importing process starts pyiceberg's; a re-import with nothing new starts no process.

Where processes cannot start (AWS Lambda has no /dev/shm: creating the pool's semaphores raises OSError; a
temp folder whose path is too long for the forkserver's socket), `start` logs one line and returns None, and
the check runs on threads: slower, the same parts.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import logging
import mmap
import multiprocessing
import multiprocessing.forkserver
import os
import sys
import types
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .arrow_part import write_arrow_part
from .formats import FORMATS
from .parse import ParsedFile
from .raw_parts import typed_part
from .reader import ExportFile
from .strict import strict_decode

# DuckDB imported where used: the check's forkserver imports this module, and its workers never use DuckDB
# (~0.1 CPU s and ~25 MiB less there; workers.py)
if TYPE_CHECKING:
    import duckdb

log = logging.getLogger(__name__)
# A download smaller than this is checked on threads: starting the forkserver and two workers (~0.3 CPU s,
# ~0.3 s of wall) would cost more than the GIL does on a few files. 64 MiB is about 85,000 plays.
PROCESS_MIN_BYTES = 64 * 2**20
WORKERS = 2


@dataclass(frozen=True)
class Job:
    """One file for a worker: where it is, its format (None: unknown, only hashed), its part's metadata
    and path, and whether to hash it."""

    path: Path
    fmt: str | None
    meta: dict[str, str]
    part: Path
    hash: bool


@dataclass(frozen=True)
class Checked:
    plays: int | None  # None: the strict check refused the file (or its format is unknown)
    part_written: bool  # False with plays: Arrow declined a value; the part is for DuckDB to write
    sha256: str  # empty unless the job asked for it
    size: int
    worker: int = 0  # the worker's pid, and its CPU seconds and peak RSS (KiB) after this job: what it cost
    cpu_s: float = 0.0
    peak_rss_kib: int = 0


@dataclass(frozen=True)
class Usage:
    """What the workers of one `check_in_processes` cost: CPU seconds of them all, the largest peak RSS."""

    cpu_s: float
    peak_rss_mib: float


def worth_it(total_bytes: int) -> bool:
    """Whether a download this large is checked in processes: large enough, more than one core, and a
    platform with a forkserver."""
    return (
        total_bytes >= PROCESS_MIN_BYTES
        and (os.cpu_count() or 1) > 1
        and "forkserver" in multiprocessing.get_all_start_methods()
    )


def check_and_write(job: Job) -> Checked:
    """In a worker: read the file once, hash it, decode it strictly and write its Arrow part. The file is
    mapped, not copied into memory (~0.1 CPU s less per 1M plays): msgspec's `Raw` values point into it, so
    the map is closed only once the part is written and they are gone."""
    fmt = FORMATS[job.fmt] if job.fmt is not None else None
    with _mapped(job.path) as data:
        sha, size = hashlib.sha256(data).hexdigest() if job.hash else "", len(data)
        plays = strict_decode(data, fmt) if fmt is not None else None
        if fmt is None or plays is None:
            return _with_usage(Checked(None, False, sha, size))
        try:
            checked = Checked(len(plays), write_arrow_part(plays, fmt, job.meta, job.part), sha, size)
        finally:
            del plays  # before the map is closed: its values are views of it
    return _with_usage(checked)


@contextmanager
def _mapped(path: Path) -> Iterator[bytes | mmap.mmap]:
    """The file's bytes, mapped read-only (an empty file cannot be mapped: empty bytes)."""
    with path.open("rb") as file:
        if os.fstat(file.fileno()).st_size == 0:
            yield b""
            return
        data = mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ)
        try:
            yield data
        finally:
            with contextlib.suppress(BufferError):  # a view held by an error's traceback: unmapped with it
                data.close()


def _with_usage(checked: Checked) -> Checked:
    import resource  # Unix only, as the forkserver is (`worth_it`)

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return dataclasses.replace(
        checked, worker=os.getpid(), cpu_s=usage.ru_utime + usage.ru_stime, peak_rss_kib=usage.ru_maxrss
    )


def start(total_bytes: int, files: int) -> ProcessPoolExecutor | None:
    """The pool that will check a download of `total_bytes` in `files` files, its forkserver starting now
    (its imports, ~0.15 CPU s, run meanwhile); None when threads are better (`worth_it`)
    or when processes cannot start here (logged once: the check then runs on threads). Its workers start at
    the first job (`check_in_processes`); the caller shuts it down."""
    if not worth_it(total_bytes) or files < 1:
        return None
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([__name__])  # imported once, in the server, not in each worker
    pool: ProcessPoolExecutor | None = None
    try:
        pool = ProcessPoolExecutor(min(WORKERS, files), mp_context=context)  # its queues' semaphores: /dev/shm
        with _main_not_rerun():  # the server is told the program's main module here
            multiprocessing.forkserver.ensure_running()
    except (OSError, ImportError, NotImplementedError) as error:  # PermissionError too; no sem_open at all
        if pool is not None:
            pool.shutdown(wait=False)
        _on_threads(error)
        return None
    return pool


def _on_threads(error: BaseException) -> None:
    log.warning("worker processes cannot start here (%s); checking the history files on threads", error)


class CannotStart(Exception):
    """The pool's worker processes could not start (the error is logged): check on threads instead."""


def check_in_processes(
    jobs: Sequence[Job], meanwhile: Callable[[], None] | None = None, pool: ProcessPoolExecutor | None = None
) -> tuple[list[Checked], Usage]:
    """`check_and_write` of every job on `pool`'s processes (a new pool when None), in the jobs' order, and
    what the workers cost (the forkserver's start is not counted). `meanwhile` is called first, to run while
    the processes start and work: the importing process has nothing else to do until they are done. An
    exception in a worker (a file that cannot be read) is raised here; CannotStart when the workers could not
    be started, the pool then shut down with no job left running."""
    if meanwhile is not None:  # first: the submits below may wait for the forkserver's own imports
        meanwhile()
    if pool is None:
        pool = start(PROCESS_MIN_BYTES, len(jobs))
    if pool is None:
        raise CannotStart
    with pool:
        results: list[Future[Checked]] = []
        try:
            with _main_not_rerun():  # the workers start in these submits
                results.extend(pool.submit(check_and_write, job) for job in jobs)
        except OSError as error:  # a worker could not be forked: no job is left running when this returns
            pool.shutdown(wait=True, cancel_futures=True)
            _on_threads(error)
            raise CannotStart from error
        done = [future.result() for future in results]
    last = {c.worker: c for c in done}  # each worker's usage after its last job
    usage = Usage(sum(c.cpu_s for c in last.values()), max((c.peak_rss_kib for c in last.values()), default=0) / 1024)
    return done, usage


@contextmanager
def _main_not_rerun() -> Iterator[None]:
    """Start processes without the program's `__main__`: multiprocessing re-runs the main script (or module)
    in every new process so that pickled functions defined there resolve, and a script calling
    `Lake.import_history` without an `if __name__ == "__main__"` guard would start a second import there
    (waiting forever for the lake's lock this import holds). The workers need nothing from it: their
    function lives in this module. In effect only while the pool's processes are started."""
    main = sys.modules["__main__"]
    sys.modules["__main__"] = types.ModuleType("__main__")
    try:
        yield
    finally:
        sys.modules["__main__"] = main


def parts_in_processes(
    con: duckdb.DuckDBPyConnection,
    files: Sequence[ExportFile],
    metas: Sequence[dict[str, str]],
    parts: Sequence[Path],
    hashes: dict[Path, tuple[str, int]] | None,
    meanwhile: Callable[[], None] | None = None,
    pool: ProcessPoolExecutor | None = None,
) -> tuple[list[ParsedFile | None], Usage]:
    """The strict check and part of every file (its part's metadata and path in `metas` and `parts`) in
    worker processes, as importer.py does it on threads: None for a file the check refuses (for the checked
    parse); a part Arrow declined is written here by DuckDB on `con`, one file at a time (rare: an unusual
    time or JSON value). `hashes`, when given, gets each file's sha256 and size. `pool`: as `start` made it
    (a new one when None); CannotStart when its processes could not start."""
    jobs = [
        Job(f.path, f.fmt.name if f.fmt is not None else None, meta, part, hashes is not None)
        for f, meta, part in zip(files, metas, parts, strict=True)
    ]
    outcomes, usage = check_in_processes(jobs, meanwhile, pool)
    fast: list[ParsedFile | None] = []
    for source, job, checked in zip(files, jobs, outcomes, strict=True):
        if hashes is not None:
            hashes[source.path] = (checked.sha256, checked.size)
        if checked.plays is None or source.fmt is None:
            fast.append(None)
        elif checked.part_written:
            fast.append(ParsedFile(source, source.fmt, checked.plays, [], job.part))
        else:
            fast.append(typed_part(con, source, checked.plays, job.meta, job.part))
    return fast, usage
