"""Where a small run's transform goes (issue #20): on a copy of a lake, one run in which one playlist changed,
its transform timed step by step (transform/relations.py steps, the merges' and checks' SQL, the commits),
and against it the time to start the CLI and open the lake (`query "select 1"`), in one session.

    python -m bench.small_run --lake L --items 100000 [--repeat 3] [--profile out.pstats]

The lake (built by `bench.steady_state`) is never written: each repeat copies it (`--scratch`), makes the copy
independent the way a user would (`Catalog` refuses a copied lake until `repair`), writes the same one-playlist
run into it and transforms it.
"""

from __future__ import annotations

import argparse
import cProfile
import datetime as dt
import json
import logging
import random
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.generate import catalog_for, write_run
from bench.steady_state import cli_open_s
from spotify_pipeline.lake import LocalStorage
from spotify_pipeline.tables.catalog import Catalog
from spotify_pipeline.transform import transform


class StepTimes(logging.Handler):
    """Collects the `step <name>: <seconds>` debug records the transform logs (transform/relations.py)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.seconds: dict[str, float] = {}

    def emit(self, record: logging.LogRecord) -> None:
        if record.msg == "step %s: %.4f s":
            name, seconds = record.args  # type: ignore[misc]
            self.seconds[name] = self.seconds.get(name, 0.0) + seconds


def prepare(lake: Path, scratch: Path, items: int, playlist: int) -> None:
    """A copy of `lake` made independent, with one new raw run in which playlist `playlist` changed."""
    if scratch.exists():
        shutil.rmtree(scratch)
    subprocess.run(["cp", "-a", str(lake), str(scratch)], check=True)
    subprocess.run(
        [sys.executable, "-m", "spotify_pipeline", "repair", "--lake", str(scratch)], check=True, capture_output=True
    )
    catalog = catalog_for(items)
    # after the lake's last run (ids are `<time>-<number>`; a count of manifests can repeat an id's time)
    last = max(p.stem.removeprefix("run_id=") for p in (scratch / "raw" / "_manifests").rglob("*.json"))
    stamp, number = last.split("-")
    runs = int(number)
    when = dt.datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.UTC) + dt.timedelta(hours=1)
    catalog.mutate([playlist])
    everything = range(catalog.config.playlists)
    write_run(
        scratch,
        catalog,
        f"{when:%Y%m%dT%H%M%SZ}-{runs + 1:06d}",
        when,
        [playlist],
        checked=[i for i in everything if i != playlist],
    )


def measure(scratch: Path, profile: Path | None) -> dict[str, Any]:
    steps = StepTimes()
    logger = logging.getLogger("spotify_pipeline")
    logger.addHandler(steps)
    logger.setLevel(logging.DEBUG)
    profiler = cProfile.Profile() if profile else None
    started, cpu = time.perf_counter(), time.process_time()
    try:
        if profiler:
            profiler.enable()
        result = transform(LocalStorage(scratch), Catalog(scratch))
        if profiler:
            profiler.disable()
    finally:
        logger.removeHandler(steps)
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    if profiler and profile:
        profiler.dump_stats(profile)
    return {
        "wall_s": round(wall, 3),
        "cpu_s": round(cpu, 3),  # every thread of this process: on a shared machine, steadier than the wall
        "batch_rows": result.batch_rows.get("playlist_songs", 0),
        "steps_s": {k: round(v, 4) for k, v in sorted(steps.seconds.items(), key=lambda kv: -kv[1])},
    }


def fixed_costs(lake: Path) -> dict[str, float]:
    """Seconds of what every transform pays whatever changed (best of 3, on a transformed scratch lake):
    opening the catalog, loading every table's metadata, planning every table's files, listing the raw
    zone's manifests, reading `processed_raw_runs`, and one commit (an append of one row to a table)."""
    import datetime as dt

    import pyarrow as pa

    from spotify_pipeline.lake.raw import RawZoneReader
    from spotify_pipeline.tables.contract import TABLES
    from spotify_pipeline.transform.connection import connect, register_table
    from spotify_pipeline.transform.snapshots import current_snapshots, processed_runs, table_row_counts

    def best(action: Any) -> float:
        times = []
        for _ in range(3):
            started = time.perf_counter()
            action()
            times.append(time.perf_counter() - started)
        return round(min(times), 4)

    catalog = Catalog(lake)
    names = catalog.table_names()
    con = connect()
    row = pa.Table.from_pylist(
        [{"raw_run_id": "bench", "processed_at": dt.datetime.now(dt.UTC), "by_run_id": "bench"}],
        schema=TABLES["processed_raw_runs"].schema,
    )
    return {
        "tables": len(names),
        "open_catalog_s": best(lambda: Catalog(lake).iceberg),
        "load_every_table_s": best(lambda: [catalog.table(n) for n in names]),
        "snapshots_and_counts_s": best(lambda: table_row_counts(catalog, current_snapshots(catalog))),
        "plan_every_table_s": best(lambda: [register_table(con, catalog, n, f"v_{n}") for n in names]),
        "list_raw_manifests_s": best(lambda: RawZoneReader(LocalStorage(lake)).manifests()),
        "read_processed_runs_s": best(lambda: processed_runs(catalog, catalog.snapshot_id("processed_raw_runs"))),
        "one_append_commit_s": best(lambda: catalog.append("processed_raw_runs", row)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lake", type=Path, required=True)
    parser.add_argument("--items", type=int, required=True, help="the items the lake was built with")
    parser.add_argument("--scratch", type=Path, default=None, help="where the copy goes (default: <lake>-scratch)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--profile", type=Path, default=None, help="cProfile stats of the last repeat")
    args = parser.parse_args()
    scratch = args.scratch or args.lake.with_name(args.lake.name + "-scratch")
    playlist = random.Random(11).randrange(catalog_for(args.items).config.playlists)
    runs, opens = [], []
    for i in range(args.repeat):
        prepare(args.lake, scratch, args.items, playlist)
        opens.append(cli_open_s(scratch))
        runs.append(measure(scratch, args.profile if i == args.repeat - 1 else None))
        print(json.dumps(runs[-1]), flush=True)
    fixed = fixed_costs(scratch)
    print(json.dumps({"fixed_costs": fixed}), flush=True)
    wall = statistics.median(r["wall_s"] for r in runs)
    cli = statistics.median(opens)
    load = Path("/proc/loadavg").read_text().split()[:3]
    print(
        json.dumps(
            {
                "items": args.items,
                "transform_wall_s": wall,
                "cli_open_s": round(cli, 3),
                "ratio": round(wall / cli, 2),
                "walls": [r["wall_s"] for r in runs],
                "cpus": [r["cpu_s"] for r in runs],
                "load": load,
            }
        )
    )


if __name__ == "__main__":
    main()
