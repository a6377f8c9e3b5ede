"""What escaping a lake's path costs (tables/files.py `sql_path`): DuckDB resolves a path holding an escaped
glob character by listing the folder that holds the first one, once per file. The same Parquet files are
read through `sql_paths` from a folder named `lake` and from one named `lake [1]`, each beside `--siblings`
other folders; medians of `--repeat` scans, interleaved, ratios in one run.

    python -m bench.glob_paths --files 50 --siblings 200
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import duckdb

from spotify_pipeline.tables.files import sql_paths


def scan_s(con: duckdb.DuckDBPyConnection, files: list[str]) -> float:
    started = time.perf_counter()
    con.execute(f"SELECT count(*) FROM read_parquet({sql_paths(files)})").fetchall()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--files", type=int, default=50)
    parser.add_argument("--siblings", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        for i in range(args.siblings):
            (base / f"sibling{i}").mkdir()
        lakes: dict[str, list[str]] = {}
        con = duckdb.connect()
        for name in ("lake", "lake [1]"):
            (base / name).mkdir()
            lakes[name] = [str(base / name / f"f{i}.parquet") for i in range(args.files)]
            for i, path in enumerate(lakes[name]):
                con.execute(f"COPY (SELECT {i} AS v FROM range(1000)) TO '{path.replace(chr(39), chr(39) * 2)}'")
        times: dict[str, list[float]] = {name: [] for name in lakes}
        for _ in range(args.repeat):
            for name, files in lakes.items():
                times[name].append(scan_s(con, files))
        plain, escaped = (statistics.median(times[n]) for n in ("lake", "lake [1]"))
        print(
            json.dumps(
                {
                    "files": args.files,
                    "siblings": args.siblings,
                    "plain_ms": round(plain * 1000, 2),
                    "escaped_ms": round(escaped * 1000, 2),
                    "ratio": round(escaped / plain, 2),
                }
            )
        )


if __name__ == "__main__":
    main()
