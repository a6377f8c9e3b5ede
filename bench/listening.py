"""Benchmark the listening reports: p50 and p90 of each over N listens (default 1M), in the in-memory engine
`report` and `serve` use and in the views over Parquet that `query` uses, all time and one year.

The `listens` table is written directly (the import is measured by bench.history): 1M listens over 10 years,
5,000 songs by 700 artists, realistic shares of skips (20%), incognito (5%), short plays and episodes.

    python -m bench.listening --listens 1000000
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import duckdb
import pyarrow as pa

from spotify_pipeline.config import load_settings
from spotify_pipeline.lake import LocalStorage
from spotify_pipeline.lake_api import Lake
from spotify_pipeline.query.engine import QueryEngine
from spotify_pipeline.reports import LISTENING_ORDER, run_report
from spotify_pipeline.tables.catalog import Catalog
from spotify_pipeline.tables.contract import TABLES


def listens_table(n: int, seed: float = 0.42) -> pa.Table:
    """N listens generated in DuckDB (seeded), in the `listens` schema."""
    con = duckdb.connect()
    con.execute(f"SELECT setseed({seed})")
    rows = con.execute(
        f"""
        WITH g AS (
            SELECT i, (random() * 5000)::INT AS t, random() AS r1, random() AS r2, random() AS r3, random() AS r4,
                   TIMESTAMPTZ '2016-01-01 00:00:00+00' + to_seconds((random() * 10 * 365 * 86400)::BIGINT) AS ended
            FROM range({n}) r(i)
        )
        SELECT printf('%032x', i) AS listen_id, CASE WHEN r1 < 0.9 THEN 'bench' ELSE 'other' END AS user_id,
               ended AS ended_at,
               (CASE WHEN r2 < 0.05 THEN 0 WHEN r2 < 0.2 THEN 5000 ELSE 200000 END + (r3 * 60000)::INT)::BIGINT
                   AS ms_played,
               CASE WHEN r4 < 0.03 THEN 'episode' ELSE 'track' END AS item_type,
               printf('%022d', t) AS song_id, 'spotify:track:' || printf('%022d', t) AS item_uri,
               'Track ' || t AS track_name, 'Artist ' || (t % 700) AS artist_name, 'Album ' || (t // 8) AS album_name,
               CASE WHEN r3 > 0.95 THEN NULL ELSE r2 < 0.2 END AS skipped, r4 > 0.95 AS incognito,
               'export' AS source, 'extended' AS source_format
        FROM g ORDER BY ended
        """
    ).to_arrow_table()
    schema = TABLES["listens"].schema
    arrays = [rows[f.name] if f.name in rows.column_names else pa.nulls(n, f.type) for f in schema]
    return pa.Table.from_arrays(arrays, names=schema.names).cast(schema)


def timings(engine: QueryEngine, name: str, params: dict[str, str], repeat: int) -> list[float]:
    run_report(engine, name, params)  # warm-up
    out = []
    for _ in range(repeat):
        began = time.perf_counter()
        run_report(engine, name, params)
        out.append((time.perf_counter() - began) * 1000)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--listens", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    scopes = {"all time": {}, "2025, one user": {"from": "2025-01-01", "to": "2025-12-31", "user": "bench"}}
    results: dict[str, dict[str, dict[str, float]]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-listening-") as tmp:
        lake = Path(tmp) / "lake"
        settings = load_settings({"lake": str(lake)}, env={})
        catalog = Catalog(lake)  # the synthetic listens are appended directly: no raw zone to transform
        catalog.append("listens", listens_table(args.listens))
        for mode, in_memory in (("in-memory (report, serve)", True), ("views over Parquet (query)", False)):
            with Lake(settings, LocalStorage(lake), catalog).engine(in_memory=in_memory) as engine:
                for scope, params in scopes.items():
                    for name in LISTENING_ORDER:
                        ms = timings(engine, name, params, args.repeat)
                        key = f"{mode} | {scope}"
                        results.setdefault(key, {})[name] = {
                            "p50_ms": round(statistics.median(ms), 1),
                            "p90_ms": round(statistics.quantiles(ms, n=10)[-1], 1),
                        }
    print(json.dumps({"listens": args.listens, "results": results}))
    for key, reports in results.items():
        print(f"{key:<48}" + "  ".join(f"{n} {v['p50_ms']:.0f}/{v['p90_ms']:.0f}" for n, v in reports.items()))


if __name__ == "__main__":
    main()
