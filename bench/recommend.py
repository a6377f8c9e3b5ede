"""Benchmark `recommend`: a lake of N playlist items (bench/generate.py, structured catalog), the model built
once from it, then recommendations for 50 playlists. Prints build seconds, p50/p95 recommend latency and the
process's peak RSS.

    python -m bench.recommend --items 1000000
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import resource
import statistics
import tempfile
import time
from pathlib import Path

from bench.generate import write_run
from spotify_pipeline import Lake
from spotify_pipeline.config import load_settings
from spotify_pipeline.lake import LocalStorage
from spotify_pipeline.recommend import build_model, recommend_for_playlist
from spotify_pipeline.simulator import Catalog as SimCatalog
from spotify_pipeline.simulator import CatalogConfig
from spotify_pipeline.tables.catalog import Catalog


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--items", type=int, required=True)
    parser.add_argument("--lake", type=Path, default=None, help="reuse or keep a lake here")
    parser.add_argument("--queries", type=int, default=50)
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
    info = build_model(storage, catalog)
    latencies = []
    for k in range(args.queries):
        pid = sim.id_of("playlist", (k * 7919) % (playlists - 1))
        started = time.perf_counter()
        recommend_for_playlist(storage, catalog, pid, 50)
        latencies.append((time.perf_counter() - started) * 1000)
    print(
        json.dumps(
            {
                "items": args.items,
                "songs": info.songs,
                "neighbor_rows": info.neighbors,
                "build_s": info.build_seconds,
                "recommend_p50_ms": round(statistics.median(latencies), 1),
                "recommend_p95_ms": round(sorted(latencies)[int(0.95 * len(latencies)) - 1], 1),
                "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
            }
        )
    )


if __name__ == "__main__":
    main()
