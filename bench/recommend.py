"""Benchmark `recommend`: a lake of N playlist items (bench/generate.py's raw zone of the structured `taste`
catalog, transformed), the model built once from it, then recommendations for `--queries` playlists, three
ways:

- `recommender`: `Recommender.for_playlist` in one process after the model is loaded once (what serve,
  GraphQL and the library use): the time of the call alone;
- `one_shot`: `recommend_for_playlist` in-process (what the CLI calls): reads the model rows and the
  playlist's rows it needs, the lake's tables opened on each call;
- `cli`: the whole `spotify-pipeline recommend --playlist ID` process (interpreter start, imports, the
  one-shot call, and storing the result in the `recommendations` table), for `--cli-queries` playlists.

Prints one JSON line: build seconds (wall and CPU of all threads), peak RSS, load seconds, p50/p95
milliseconds of each way, and the machine's load average (the machine may be shared).

    python -m bench.recommend --items 1000000 --lake /tmp/bench-recommend-1m
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import statistics
import subprocess  # nosec B404 -- runs this package's own CLI, arguments built here
import sys
import tempfile
import time
from pathlib import Path

from bench.generate import write_run
from spotify_pipeline import Lake
from spotify_pipeline.config import load_settings
from spotify_pipeline.lake import LocalStorage
from spotify_pipeline.recommend import Recommender, build_model, recommend_for_playlist
from spotify_pipeline.simulator import Catalog as SimCatalog
from spotify_pipeline.simulator import CatalogConfig
from spotify_pipeline.tables.catalog import Catalog


def _percentiles(ms: list[float]) -> dict[str, float]:
    ordered = sorted(ms)
    return {
        "p50_ms": round(statistics.median(ordered), 1),
        "p95_ms": round(ordered[max(0, int(0.95 * len(ordered)) - 1)], 1),
    }


def _peak_rss_mb() -> int:
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--items", type=int, required=True)
    parser.add_argument("--lake", type=Path, default=None, help="reuse or keep a lake here")
    parser.add_argument("--queries", type=int, default=50)
    parser.add_argument("--cli-queries", type=int, default=5)
    args = parser.parse_args()
    lake = args.lake or Path(tempfile.mkdtemp(prefix="bench-recommend-")) / "lake"
    playlists = max(3, args.items // 100)
    sim = SimCatalog(CatalogConfig(seed=42, playlists=playlists, items_per_playlist=100, taste=True))
    storage, catalog = LocalStorage(lake), Catalog(lake)
    if not catalog.exists():
        started = time.monotonic()
        write_run(
            lake, sim, "20261101T120000Z-000001", dt.datetime(2026, 11, 1, 12, tzinfo=dt.UTC), list(range(playlists))
        )
        Lake.open(settings=load_settings({"lake": str(lake)}, env={})).transform()
        print(f"lake: {time.monotonic() - started:.1f} s", flush=True)
    # Measured below the `Lake`: the model build and the ranking alone (`Lake.recommend` adds the lake's lock
    # and the write to `recommendations`, which are not what this benchmark is about).
    rss_before = _peak_rss_mb()
    cpu_before = resource.getrusage(resource.RUSAGE_SELF)
    info = build_model(storage, catalog)
    cpu_after = resource.getrusage(resource.RUSAGE_SELF)
    build_cpu = cpu_after.ru_utime + cpu_after.ru_stime - cpu_before.ru_utime - cpu_before.ru_stime
    build_rss = _peak_rss_mb()
    ids = [sim.id_of("playlist", (k * 7919) % (playlists - 1)) for k in range(args.queries)]

    started = time.perf_counter()
    recommender = Recommender(storage, catalog)
    load_s = time.perf_counter() - started
    in_process = []
    for pid in ids:
        started = time.perf_counter()
        recommender.for_playlist(pid, 50)
        in_process.append((time.perf_counter() - started) * 1000)
    recommender.close()

    one_shot = []
    for pid in ids:
        started = time.perf_counter()
        recommend_for_playlist(storage, catalog, pid, 50)
        one_shot.append((time.perf_counter() - started) * 1000)

    cli = []
    env = {**os.environ, "SPOTIFY_PIPELINE_LAKE": str(lake)}
    for pid in ids[: args.cli_queries]:
        started = time.perf_counter()
        done = subprocess.run(  # nosec B603 -- fixed argv: this interpreter and this package's CLI
            [sys.executable, "-m", "spotify_pipeline", "recommend", "--playlist", pid, "--format", "json"],
            env=env,
            capture_output=True,
            check=False,
        )
        cli.append((time.perf_counter() - started) * 1000)
        if done.returncode:
            raise SystemExit(done.stderr.decode())
    print(
        json.dumps(
            {
                "items": args.items,
                "songs": info.songs,
                "neighbor_rows": info.neighbors,
                "model_mb": round(storage.local_path("models/recommend/model.parquet").stat().st_size / 2**20, 1)
                if storage.local_path("models/recommend/model.parquet")
                else None,
                "build_s": info.build_seconds,
                "build_cpu_s": round(build_cpu, 1),  # all threads: what the build costs on a busy machine
                "build_peak_rss_mb": build_rss,
                "rss_before_build_mb": rss_before,
                "recommender_load_s": round(load_s, 2),
                "recommender": _percentiles(in_process),
                "one_shot": _percentiles(one_shot),
                "cli": _percentiles(cli) if cli else None,
                "peak_rss_mb": _peak_rss_mb(),
                "load_average": [round(x, 1) for x in os.getloadavg()],
            }
        )
    )


if __name__ == "__main__":
    main()
