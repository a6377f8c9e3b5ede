"""Memory of a long-lived process (`poll`, `serve`): many transforms in one process, resident memory after
each, to find what a process keeps from one run to the next and whether it grows without bound.

    python -m bench.memory_growth --items 30000 --runs 40 --out growth.json
    python -m bench.memory_growth --items 30000 --runs 40 --skip expire       # bisect: leave a step out
    MALLOC_ARENA_MAX=2 python -m bench.memory_growth ...                      # glibc arenas capped

After each run: `gc.collect()`, glibc's `malloc_trim(0)` and Arrow's `release_unused()`, then RSS
(/proc/self/statm), the count of live Python objects, of DuckDB connections still reachable from Python, and
Arrow's allocated bytes. `--tracemalloc` also reports the Python allocations that grew most between the
first and last measured run. `--mode child` runs each transform in a child process (what `poll` does,
extract/poll.py), so the parent's growth can be compared with the in-process one in one session.
`--serve` also runs the dashboard (`serve`) in this process and asks it a few questions after each run
(its engine reopens when the tables change): with `--mode child`, this process's growth is serve's. Its
engine lives in a worker process (serve/engine_process.py), replaced every `--recycle-after` reopens: that
worker's RSS is reported too (`engine_rss_mib`, `engine_pid`).

    python -m bench.memory_growth --items 30000 --runs 40 --mode child --serve
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import datetime as dt
import gc
import json
import multiprocessing
import random
import time
import tracemalloc
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from bench.child import peak_rss_kib
from bench.generate import catalog_for
from bench.steady_state import _start_worker, _write_in_worker
from spotify_pipeline.lake import LocalStorage
from spotify_pipeline.tables.catalog import Catalog
from spotify_pipeline.tables.retention import expire_history
from spotify_pipeline.transform import transform


def rss_mib() -> float:
    """Resident memory of this process now, in MiB."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20


def settle() -> None:
    """Hand back what can be handed back, so what stays is what something still holds."""
    gc.collect()
    pa.default_memory_pool().release_unused()
    with contextlib.suppress(OSError, AttributeError):  # not glibc: nothing to trim
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def duckdb_connections() -> int:
    """DuckDB connections still reachable from Python (open or not: a closed one holds no database)."""
    return sum(isinstance(o, duckdb.DuckDBPyConnection) for o in gc.get_objects())


def transform_once(lake: Path, expire: bool) -> float:
    """One transform then, as `pipeline.run` does, the expiry of older snapshots (all but the current one
    here, so the lake's metadata stays the same size and only the process can grow). Returns the peak
    RSS of the process it ran in so far (VmHWM, MiB): a child's is this run's alone."""
    transform(LocalStorage(lake), Catalog(lake))
    if expire:
        expire_history(Catalog(lake), 0)
    return peak_rss_kib() / 1024


def one_transform(lake: Path, mode: str, skip: str) -> float:
    """A transform as `mode` runs it; the peak RSS of the process it ran in (MiB)."""
    if mode == "child":  # as `poll` runs it (extract/poll.py): the transform in a child process that exits
        from bench.memory_growth import transform_once as by_reference  # not __main__'s: the child imports it
        from spotify_pipeline.isolated import in_child

        return float(in_child(by_reference, lake, skip != "expire"))
    if skip == "transform":
        expire_history(Catalog(lake), 0)
        return peak_rss_kib() / 1024
    return transform_once(lake, skip != "expire")


DASHBOARD_QUESTIONS = ("/api/summary", "/api/playlists", "/api/reports/top_artists", "/api/charts/top_artists.json")


def serve(lake: Path, recycle_after: int) -> Callable[[], dict[str, Any]]:
    """The dashboard over `lake`, serving in a thread of this process; a function that asks it the usual
    questions (each a 200, or the benchmark stops) and returns its engine worker's pid and RSS."""
    import httpx

    from spotify_pipeline.serve.dashboard import Dashboard

    dashboard = Dashboard(lake, "127.0.0.1", 0, recycle_after=recycle_after).start()

    def ask() -> dict[str, Any]:
        for path in DASHBOARD_QUESTIONS:
            httpx.get(f"http://127.0.0.1:{dashboard.port}{path}", timeout=120).raise_for_status()
        pid = dashboard.engine_stats().pid
        with open(f"/proc/{pid}/statm") as f:
            return {"engine_pid": pid, "engine_rss_mib": round(int(f.read().split()[1]) * 4096 / 2**20, 1)}

    return ask


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=30_000)
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--change", type=float, default=0.01, help="share of playlists changed per run")
    parser.add_argument("--mode", choices=("process", "child"), default="process")
    parser.add_argument("--skip", choices=("", "transform", "expire"), default="", help="bisect: leave a step out")
    parser.add_argument("--serve", action="store_true", help="the dashboard in this process, asked after each run")
    parser.add_argument("--recycle-after", type=int, default=10, help="with --serve: reopens per engine worker")
    parser.add_argument("--tracemalloc", action="store_true", help="Python allocations that grew, top 15")
    parser.add_argument("--lake", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    import tempfile

    lake = args.lake or Path(tempfile.mkdtemp(prefix="growth-"))
    playlists = catalog_for(args.items).config.playlists
    everything = list(range(playlists))
    rng = random.Random(7)
    when = dt.datetime(2026, 11, 1, 0, tzinfo=dt.UTC)
    spawn = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(1, spawn, initializer=_start_worker, initargs=(args.items, lake, False))

    def generate(step: int, changed: list[int], checked: list[int] | None, mutate: bool) -> None:
        at = when + dt.timedelta(hours=step)
        pool.submit(
            _write_in_worker, lake, f"{at:%Y%m%dT%H%M%SZ}-{step + 1:06d}", at, changed, checked, mutate
        ).result()

    generate(0, everything, None, False)
    settle()
    start_rss = rss_mib()
    one_transform(lake, args.mode, "")  # the build
    ask = serve(lake, args.recycle_after) if args.serve else None
    per_run = max(1, round(len(everything) * args.change))
    rows: list[dict[str, Any]] = []
    snapshot = None
    for step in range(1, args.runs + 1):
        changed = rng.sample(everything, per_run)
        generate(step, changed, sorted(set(everything) - set(changed)), True)
        started = time.perf_counter()
        peak = one_transform(lake, args.mode, args.skip)
        wall = time.perf_counter() - started
        engine = ask() if ask is not None else {}
        settle()
        if args.tracemalloc and step == 3:
            tracemalloc.start(10)
            snapshot = tracemalloc.take_snapshot()
        rows.append(
            {
                "run": step,
                "rss_mib": round(rss_mib(), 1),
                "peak_mib": round(peak, 1),
                "wall_s": round(wall, 3),
                "python_objects": len(gc.get_objects()),
                "duckdb_connections": duckdb_connections(),
                "arrow_bytes": pa.total_allocated_bytes(),
                **engine,
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    pool.shutdown()
    tail = rows[len(rows) // 2 :]
    result: dict[str, Any] = {
        "items": args.items,
        "runs": args.runs,
        "mode": args.mode,
        "serve": args.serve,
        "rss_before_build_mib": round(start_rss, 1),
        "rss_first_mib": rows[0]["rss_mib"],
        "rss_last_mib": rows[-1]["rss_mib"],
        "peak_first_last_mib": [rows[0]["peak_mib"], rows[-1]["peak_mib"]],
        # growth per run over the second half (after caches and arenas have warmed up)
        "mib_per_run_second_half": round((tail[-1]["rss_mib"] - tail[0]["rss_mib"]) / max(1, len(tail) - 1), 2),
        "python_objects_first_last": [rows[0]["python_objects"], rows[-1]["python_objects"]],
        "duckdb_connections_last": rows[-1]["duckdb_connections"],
        "engine_rss_max_mib": max((r.get("engine_rss_mib", 0.0) for r in rows), default=0.0),
        "engine_workers": len({r["engine_pid"] for r in rows if "engine_pid" in r}),
        "runs_detail": rows,
    }
    if snapshot is not None:
        grown = tracemalloc.take_snapshot().compare_to(snapshot, "traceback")[:15]
        result["tracemalloc_top"] = [f"{s.size_diff / 1024:.0f} KiB {s.count_diff:+} {s.traceback}" for s in grown]
        for line in result["tracemalloc_top"]:
            print(line)
    print(json.dumps({k: v for k, v in result.items() if k != "runs_detail"}, indent=1))
    if args.out:
        args.out.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
