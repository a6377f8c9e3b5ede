"""Benchmark `import-history`: N generated plays (extended history files of 16k plays, as Spotify splits them)
imported end to end (read, check, privacy filter, raw run, transform, publish) into an empty lake, then the
same download again. Prints plays/s, the importing process's peak RSS, and the floor measured in the same
run: the seconds DuckDB's fastest reader takes only to parse the same files (what bounds the import).

    python -m bench.history --plays 1000000 [--export DIR] [--then 1000]

`--then N` then imports a later download of N newer plays into that lake and reports the table data files
it wrote (what a table's cluster order saves: catalog.py `CLUSTER_BY`).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

PER_FILE = 16_000
THREADS_ONLY = False  # --threads-only: passed on to each child
# The fields the tables read from an extended-history element, typed (the floor reads only these).
FLOOR_COLUMNS = {
    **dict.fromkeys(
        """ts platform conn_country master_metadata_track_name master_metadata_album_artist_name
        master_metadata_album_album_name spotify_track_uri episode_name episode_show_name spotify_episode_uri
        audiobook_title audiobook_uri audiobook_chapter_uri audiobook_chapter_title reason_start reason_end""".split(),
        "VARCHAR",
    ),
    "ms_played": "BIGINT",
    **dict.fromkeys(("shuffle", "skipped", "offline", "incognito_mode"), "BOOLEAN"),
}


def generate(folder: Path, plays: int, seed: int = 1, after: int = 0) -> None:
    """Extended-history files with realistic fields and sizes (a few thousand distinct tracks); `after`: the
    plays continue a download of that many plays (a later download's new plays, all newer)."""
    from spotify_pipeline.simulator.history import track_play  # here: the child process times its own imports

    rng = random.Random(seed)
    start = 1_600_000_000
    for k, first in enumerate(range(after, after + plays, PER_FILE)):
        elements = []
        for n in range(first, min(after + plays, first + PER_FILE)):
            track = rng.randrange(5000)
            ended = start + n * 200 + rng.randrange(60)
            elements.append(
                track_play(
                    time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ended)),
                    track,
                    rng.randrange(0, 300_000),
                    artist=f"Artist {track % 700}",
                    album=f"Album {track // 8}",
                    ip=f"198.51.100.{n % 250}",
                    shuffle=n % 3 == 0,
                )
            )
        (folder / f"Streaming_History_Audio_{k}.json").write_text(json.dumps(elements, indent=2))


def child(path: str, lake: str) -> None:
    """One import in this process; prints seconds, plays and peak RSS as JSON."""
    from spotify_pipeline import Lake
    from spotify_pipeline.config import load_settings

    began = time.perf_counter()
    result = Lake.open(settings=load_settings({"lake": lake}, env={})).import_history(Path(path), user="bench")
    seconds = time.perf_counter() - began
    usage = resource.getrusage(resource.RUSAGE_SELF)
    rows = result.transform.rows.get("listens")
    out = {"seconds": seconds, "plays": result.plays, "listens": rows, "peak_rss_mib": usage.ru_maxrss / 1024}
    out["phases"] = {k: {"wall_s": v.wall_s, "cpu_s": v.cpu_s} for k, v in result.detail.phases.items()}
    workers = getattr(result.detail, "worker_usage", None)  # None: threads (or code before workers.py)
    out["worker_peak_rss_mib"] = workers.peak_rss_mib if workers else 0
    out["forkserver_peak_rss_mib"] = max(_children_peak_rss_kib(), default=0) / 1024  # alive until we exit
    # CPU seconds of every thread of the process (start-up included) and of every process it started (the
    # check's forkserver and its workers, history/workers.py): on a shared machine, far steadier than wall
    # time, which grows with other people's load.
    print(json.dumps(out | {"cpu_s": usage.ru_utime + usage.ru_stime + descendants_cpu_s()}))


def _children_peak_rss_kib() -> list[int]:
    """Peak RSS (VmHWM) of each child process still running (the check's forkserver). Linux /proc."""
    peaks = []
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            fields = dict(line.split(":", 1) for line in status.read_text().splitlines() if ":" in line)
        except OSError:
            continue
        if int(fields.get("PPid", "0").strip()) == os.getpid() and "VmHWM" in fields:
            peaks.append(int(fields["VmHWM"].split()[0]))
    return peaks


def descendants_cpu_s() -> float:
    """CPU seconds of this process's children, those reaped and those still running (the forkserver lives
    as long as this process), with the children they reaped (the forkserver's workers). Linux /proc."""
    reaped = resource.getrusage(resource.RUSAGE_CHILDREN)
    total = reaped.ru_utime + reaped.ru_stime
    tick = os.sysconf("SC_CLK_TCK")
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # ended meanwhile
            continue
        if int(fields[1]) == os.getpid():  # ppid; then utime, stime, cutime, cstime are fields 12-15
            total += sum(int(f) for f in fields[11:15]) / tick
    return total


def floor(path: str) -> None:
    """The floor, in this process: only parsing the same files with the fastest reader measured (DuckDB's
    `read_json` with a typed column list, every core, values kept in memory), no check, write or transform.
    Prints seconds and rows as JSON."""
    import duckdb

    files = sorted(str(p) for p in Path(path).glob("*.json"))
    columns = "{" + ", ".join(f"'{f}': '{t}'" for f, t in FLOOR_COLUMNS.items()) + "}"
    con = duckdb.connect()
    began = time.perf_counter()
    con.execute(
        f"CREATE TEMP TABLE plays AS SELECT * FROM read_json({files}, format='array', columns={columns}, "
        "auto_detect=false, maximum_object_size=16777216)"
    )
    seconds = time.perf_counter() - began
    rows = con.execute("SELECT count(*) FROM plays").fetchall()[0][0]
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({"seconds": seconds, "rows": rows, "cpu_s": usage.ru_utime + usage.ru_stime}))


def table_files(lake: Path) -> dict[str, int]:
    """Every Parquet data file of the lake's tables, with its size in bytes."""
    return {str(p): p.stat().st_size for p in lake.glob("warehouse/*/*/data/*.parquet")}


def written_by(lake: Path, export: Path) -> dict[str, Any]:
    """Import `export` into `lake` and say which table data files it wrote: bytes and files per table."""
    before = table_files(lake)
    run = measure(export, lake)
    new = {p: size for p, size in table_files(lake).items() if p not in before}
    per_table: dict[str, dict[str, int]] = {}
    for path, size in new.items():
        table = per_table.setdefault(Path(path).parent.parent.name, {"files": 0, "bytes": 0})
        table["files"] += 1
        table["bytes"] += size
    return {
        "plays": run["plays"],
        "cpu_s": round(run["cpu_s"], 2),
        "seconds": round(run["seconds"], 2),
        "publish_cpu_s": round(run["phases"]["publish"]["cpu_s"], 2),
        "written": dict(sorted(per_table.items())),
        "lake_data_bytes_before": sum(before.values()),
    }


def measure(path: Path, lake: Path | None = None) -> dict[str, Any]:
    child_args = ["--child", str(path), str(lake)] if lake is not None else ["--floor", str(path)]
    if THREADS_ONLY:
        child_args.append("--threads-only")
    done = subprocess.run(
        [sys.executable, "-m", "bench.history", *child_args],
        capture_output=True,
        text=True,
        check=True,
    )
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--plays", type=int, default=1_000_000)
    parser.add_argument("--export", type=Path, help="import this folder of generated files (made if empty)")
    parser.add_argument(
        "--then",
        type=int,
        default=0,
        metavar="N",
        help="then import a later download of N newer plays into the same lake and report the bytes it wrote",
    )
    parser.add_argument(
        "--threads-only",
        action="store_true",
        help="check the files on threads, as for a small download (history/workers.py): the same code, A/B",
    )
    parser.add_argument("--child", nargs=2, metavar=("PATH", "LAKE"), help=argparse.SUPPRESS)
    parser.add_argument("--floor", metavar="PATH", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.threads_only:
        global THREADS_ONLY
        THREADS_ONLY = True
        from spotify_pipeline.history import workers

        workers.PROCESS_MIN_BYTES = 2**62  # no download is this large
    if args.child:
        child(*args.child)
        return
    if args.floor:
        floor(args.floor)
        return
    with tempfile.TemporaryDirectory(prefix="bench-history-") as tmp:
        export = args.export or Path(tmp) / "export"
        export.mkdir(exist_ok=True)
        if not any(export.glob("*.json")):
            generate(export, args.plays)
        size = sum(p.stat().st_size for p in export.glob("*.json"))
        load = os.getloadavg()[0]
        least = measure(export)
        first = measure(export, Path(tmp) / "lake")
        again = measure(export, Path(tmp) / "lake")
        later = None
        if args.then:
            newer = Path(tmp) / "later"
            newer.mkdir()
            generate(newer, args.then, seed=2, after=first["plays"])
            later = written_by(Path(tmp) / "lake", newer)
    out = {
        "plays": first["plays"],
        "export_mib": round(size / 2**20, 1),
        "load_average_1min": round(load, 1),
        "import_s": round(first["seconds"], 2),
        "import_cpu_s": round(first["cpu_s"], 1),
        "plays_per_s": round(first["plays"] / first["seconds"]),
        "peak_rss_mib": round(first["peak_rss_mib"]),
        "worker_peak_rss_mib": round(first["worker_peak_rss_mib"]),  # each of the check's processes, at most
        "forkserver_peak_rss_mib": round(first.get("forkserver_peak_rss_mib", 0)),  # what starts them
        "listens": first["listens"],
        "reimport_s": round(again["seconds"], 2),
        "reimport_new_plays": again["plays"],
        "parse_only_floor_s": round(least["seconds"], 2),
        "floor_plays": least["rows"],
        "import_over_floor": round(first["seconds"] / least["seconds"], 1),
        "floor_cpu_s": round(least["cpu_s"], 1),
        "import_over_floor_cpu": round(first["cpu_s"] / least["cpu_s"], 1),
        # What bounds it: each phase's wall and CPU seconds (CPU of every thread), in the order they run; what
        # is not in a phase is the interpreter's start and imports.
        "phases": {
            name: {"wall_s": round(p["wall_s"], 2), "cpu_s": round(p["cpu_s"], 2)}
            for name, p in first["phases"].items()
        },
    }
    if later is not None:
        out["later_import"] = later  # a later download's new plays into the lake just made (--then)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
