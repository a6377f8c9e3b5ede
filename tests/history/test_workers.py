"""A large download is checked in worker processes (history/workers.py): the same parts, files accepted,
refused and de-duplicated as on threads, a bad file still imports nothing, and a program without an
`if __name__ == "__main__"` guard is not re-run in the workers. `PROCESS_MIN_BYTES` is lowered so that these
small downloads take that path."""

from __future__ import annotations

import errno
import json
import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import duckdb
import pytest

from spotify_pipeline import Lake
from spotify_pipeline.config import load_settings
from spotify_pipeline.errors import InputError
from spotify_pipeline.history import importer, workers

from .test_raw_parts import ELEMENTS, small_export


def _lake(path: Path) -> Lake:
    return Lake.open(settings=load_settings({"lake": str(path)}, env={}))


def _write(path: Path, elements: Any) -> Path:
    path.write_text(json.dumps(elements, indent=2, ensure_ascii=False))
    return path


def _rows(lake: Path) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """Every raw part row (file, format, body) and every `listens` row, in a fixed order."""
    con = duckdb.connect()
    try:
        parts = sorted(str(p) for p in (lake / "raw" / "history_export").rglob("*.parquet"))
        raw = con.execute(f"SELECT meta.file, meta.format, body FROM read_parquet({parts}) ORDER BY ALL").fetchall()
    finally:
        con.close()
    listens = _lake(lake).query("SELECT * EXCLUDE (imported_at) FROM listens ORDER BY listen_id")
    return raw, [tuple(r.values()) for r in listens.to_pylist()]


def test_processes_write_what_threads_write(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every format; a file Arrow declines (a JSON value DuckDB renders its own way: DuckDB writes that part
    in the importing process); one with an unknown field (the checked parse); a file repeated (dropped by
    its sha256, which the workers compute)."""
    export = small_export(tmp_path / "export")
    _write(export / "Streaming_History_Audio_declined.json", [e | {"offline_timestamp": 1.5} for e in ELEMENTS])
    _write(export / "Streaming_History_Audio_unknown.json", [e | {"new_field": [1]} for e in ELEMENTS])
    first = sorted(export.glob("Streaming_History_Audio_*.json"))[0]
    (export / "Streaming_History_Audio_zcopy.json").write_bytes(first.read_bytes())
    used: list[int] = []
    real = workers.check_in_processes
    monkeypatch.setattr(workers, "check_in_processes", lambda jobs, *more: used.append(len(jobs)) or real(jobs, *more))

    on_threads = _lake(tmp_path / "threads").import_history(export, user="u")
    assert used == []  # a small download: threads
    monkeypatch.setattr(workers, "PROCESS_MIN_BYTES", 0)
    in_processes = _lake(tmp_path / "processes").import_history(export, user="u")
    assert len(used) == 1 and used[0] == len(on_threads.files) + 1  # every file, the copy too, in one pool

    assert in_processes.detail.worker_usage is not None and in_processes.detail.worker_usage.cpu_s > 0
    assert in_processes.already_imported == on_threads.already_imported == ["Streaming_History_Audio_zcopy.json"]
    assert in_processes.unknown_fields == on_threads.unknown_fields == {"new_field": 1}
    assert [(f["name"], f["plays"], f["sha256"]) for f in in_processes.files] == [
        (f["name"], f["plays"], f["sha256"]) for f in on_threads.files
    ]
    assert _rows(tmp_path / "processes") == _rows(tmp_path / "threads")
    assert in_processes.plays == on_threads.plays > 60


def test_a_bad_file_checked_in_processes_imports_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    export = small_export(tmp_path / "export")
    _write(export / "Streaming_History_Audio_bad.json", [{"ts": "2024-01-01T00:00:00Z", "ms_played": -5}])
    monkeypatch.setattr(workers, "PROCESS_MIN_BYTES", 0)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(importer.tempfile, "tempdir", str(scratch))  # where the import's scratch folder goes
    lake = tmp_path / "lake"
    with pytest.raises(InputError, match=r"Streaming_History_Audio_bad\.json: element 1: `ms_played` is not a whole"):
        _lake(lake).import_history(export, user="u")
    assert not (lake / "raw").exists() or not any((lake / "raw").rglob("*.parquet"))
    assert not any(scratch.iterdir())  # the parts the workers wrote went with the scratch folder


def test_a_script_without_a_main_guard_is_not_run_again_in_the_workers(tmp_path: Path) -> None:
    """multiprocessing re-runs the program's main file in each new process unless told otherwise; this
    script would then start a second import there, which would wait for the lake's lock the first holds."""
    export = small_export(tmp_path / "export")
    script = tmp_path / "unguarded.py"
    script.write_text(
        textwrap.dedent(
            f"""
            from pathlib import Path
            from spotify_pipeline import Lake
            from spotify_pipeline.config import load_settings
            from spotify_pipeline.history import workers

            workers.PROCESS_MIN_BYTES = 0
            print("started", flush=True)
            lake = Lake.open(settings=load_settings({{"lake": {str(tmp_path / "lake")!r}}}, env={{}}))
            result = lake.import_history(Path({str(export)!r}), user="u")
            print("imported", result.plays, result.detail.worker_usage is not None, flush=True)
            """
        )
    )
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    words = done.stdout.split()
    assert words.count("started") == 1, done.stdout  # a worker re-running the script would print it again
    assert words[1:] == ["imported", "228", "True"], done.stdout


def test_where_processes_cannot_start_the_import_checks_on_threads(tmp_path: Path) -> None:
    """A real failure: the forkserver listens on a Unix socket in the temp folder, and a socket's path has at
    most 107 bytes (Python 3.11 uses no abstract socket). With TMPDIR that long the pool cannot start; the
    import logs one line, checks on threads and writes what an import on threads writes."""
    export = small_export(tmp_path / "export")
    long_tmp = tmp_path / ("t" * 120)
    long_tmp.mkdir()
    script = tmp_path / "import.py"
    script.write_text(
        textwrap.dedent(
            f"""
            from pathlib import Path
            from spotify_pipeline import Lake
            from spotify_pipeline.config import load_settings
            from spotify_pipeline.history import workers

            workers.PROCESS_MIN_BYTES = 0
            lake = Lake.open(settings=load_settings({{"lake": {str(tmp_path / "lake")!r}}}, env={{}}))
            result = lake.import_history(Path({str(export)!r}), user="u")
            print("imported", result.plays, result.detail.worker_usage is None, flush=True)
            """
        )
    )
    env = {**os.environ, "TMPDIR": str(long_tmp)}
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=300, check=False, env=env
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["imported", "228", "True"], done.stdout  # no worker usage: threads
    warnings = [line for line in done.stderr.splitlines() if "cannot start" in line]
    assert len(warnings) == 1 and "checking the history files on threads" in warnings[0], done.stderr
    assert "Traceback" not in done.stderr

    _lake(tmp_path / "threads").import_history(export, user="u")
    assert _rows(tmp_path / "lake") == _rows(tmp_path / "threads")


def test_without_semaphores_as_on_aws_lambda_the_import_checks_on_threads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """AWS Lambda has no /dev/shm, so creating any multiprocessing semaphore raises OSError ENOSYS (the pool's
    queues need some). That cannot be made so on this machine, so the C constructor is replaced by one that
    raises exactly that error; everything else (the pool, the fall back, the import) is real."""
    import _multiprocessing
    import multiprocessing.synchronize  # noqa: F401  (imported before the constructor is replaced: it reads a constant)

    def no_semaphores(*args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSYS, "Function not implemented")

    export = small_export(tmp_path / "export")
    on_threads = _lake(tmp_path / "threads").import_history(export, user="u")
    monkeypatch.setattr(workers, "PROCESS_MIN_BYTES", 0)
    monkeypatch.setattr(_multiprocessing, "SemLock", no_semaphores)
    with caplog.at_level(logging.WARNING, logger="spotify_pipeline.history.workers"):
        fallen_back = _lake(tmp_path / "lambda").import_history(export, user="u")
    assert fallen_back.detail.worker_usage is None
    assert [r.getMessage() for r in caplog.records if "cannot start" in r.getMessage()] == [
        "worker processes cannot start here ([Errno 38] Function not implemented); "
        "checking the history files on threads"
    ]
    assert fallen_back.plays == on_threads.plays
    assert _rows(tmp_path / "lambda") == _rows(tmp_path / "threads")


def test_a_worker_maps_the_file_and_closes_it(tmp_path: Path) -> None:
    """`check_and_write` reads the file through a read-only map (msgspec's raw values point into it until
    the part is written): the same part as the importing process's threads write, and an empty file (which
    cannot be mapped) is hashed and refused like any file that is not a JSON array."""
    import hashlib

    from spotify_pipeline.history.arrow_part import write_arrow_part
    from spotify_pipeline.history.formats import FORMATS
    from spotify_pipeline.history.strict import strict_plays

    meta = {"run_id": "r", "fetched_at": "2024-01-01T00:00:00+00:00", "user_id": "u", "file": "f", "format": "x"}
    source = _write(tmp_path / "Streaming_History_Audio_0.json", [e | {"offline_timestamp": 5} for e in ELEMENTS])
    checked = workers.check_and_write(workers.Job(source, "extended", meta, tmp_path / "worker.parquet", True))
    plays = strict_plays(source, FORMATS["extended"])
    assert plays is not None and write_arrow_part(plays, FORMATS["extended"], meta, tmp_path / "thread.parquet")
    assert (checked.plays, checked.part_written, checked.size) == (len(ELEMENTS), True, source.stat().st_size)
    assert checked.sha256 == hashlib.sha256(source.read_bytes()).hexdigest()
    con = duckdb.connect()
    try:
        read = "SELECT * FROM read_parquet('{}')"
        assert (
            con.execute(read.format(tmp_path / "worker.parquet")).fetchall()
            == con.execute(read.format(tmp_path / "thread.parquet")).fetchall()
        )
    finally:
        con.close()
    empty = tmp_path / "Streaming_History_Audio_1.json"
    empty.write_bytes(b"")
    refused = workers.check_and_write(workers.Job(empty, "extended", meta, tmp_path / "empty.parquet", True))
    assert (refused.plays, refused.part_written, refused.size) == (None, False, 0)
    assert refused.sha256 == hashlib.sha256(b"").hexdigest() and not (tmp_path / "empty.parquet").exists()


def test_the_worker_job_benchmark_runs(tmp_path: Path) -> None:
    """bench/history_check.py (the workers' job alone, in one process) runs on a tiny download; no timing
    is asserted."""
    root = Path(__file__).resolve().parents[2]
    sys.path.insert(0, str(root))
    try:
        from bench.history import generate
    finally:
        sys.path.remove(str(root))
    export = tmp_path / "export"
    export.mkdir()
    generate(export, 500)
    done = subprocess.run(
        [sys.executable, "-m", "bench.history_check", str(export)],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout)
    assert (out["files"], out["plays"]) == (1, 500) and out["cpu_s"] >= 0
