"""What the whole-table warning `playlist_songs.positions_match_total` costs a run (issue #20): it is counted over
every position, every run (0.17 s of a one-playlist run at 10M items, quiet). Here a `playlist_songs` of N
positions (playlists of 100, sorted by playlist, one snapshot id each) and its `playlists` are written as
Parquet with pyarrow, as the tables' files are, and the check's query (from whichever `spotify_pipeline` is on
the path) is timed on them.

    PYTHONPATH=<side>/src:. python -m bench.positions_check --positions 10000000 --repeat 5 --dir D

Run once per side (main's `src/`, a branch's), interleaved: the ratio of the two is the change's.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import pyarrow.parquet as pq

from bench.check_parse import cpu_s, timing_summary
from spotify_pipeline.quality.checks import CHECKS
from spotify_pipeline.transform.connection import connect

PER_FILE = 400_000  # ~25 files at 10M positions, as a fresh 10M lake's playlist_songs


def write_tables(folder: Path, positions: int) -> None:
    """`playlist_songs` (playlist_id, position, song_id, snapshot_id) and `playlists` whose totals all match."""
    con = connect()
    folder.mkdir(parents=True, exist_ok=True)
    for start in range(0, positions, PER_FILE):
        rows = con.sql(
            f"""SELECT 'p' || lpad((i // 100)::VARCHAR, 21, '0') AS playlist_id, (i % 100)::INTEGER AS position,
                       's' || lpad((hash(i) % 3000000)::VARCHAR, 21, '0') AS song_id,
                       'snap' || lpad((i // 100)::VARCHAR, 28, 'A') AS snapshot_id
                FROM range({start}, {min(start + PER_FILE, positions)}) t(i) ORDER BY i"""
        ).to_arrow_table()
        pq.write_table(rows, folder / f"ps-{start // PER_FILE:04d}.parquet", compression="zstd")
    con.execute(
        f"""COPY (SELECT 'p' || lpad(i::VARCHAR, 21, '0') AS playlist_id, 'snap' || lpad(i::VARCHAR, 28, 'A')
                     AS snapshot_id, 100::BIGINT AS total_items, now() AS items_extracted_at
                  FROM range({positions // 100}) t(i)) TO '{folder / "playlists.parquet"}'"""
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--positions", type=int, default=10_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--dir", type=Path, required=True, help="where the tables go (written if absent)")
    args = parser.parse_args()
    if not (args.dir / "playlists.parquet").exists():
        write_tables(args.dir, args.positions)
    (sql,) = [c.sql for c in CHECKS if c.name == "playlist_songs.positions_match_total"]
    con = connect()
    con.execute(f"CREATE VIEW ps AS SELECT * FROM read_parquet('{args.dir}/ps-*.parquet')")
    con.execute(f"CREATE VIEW pl AS SELECT * FROM read_parquet('{args.dir}/playlists.parquet')")
    walls, cpus, failing = [], [], None
    for _ in range(args.repeat):
        started, cpu = time.perf_counter(), cpu_s()
        failing = con.execute(sql.format(playlists="pl", playlist_songs="ps")).fetchall()[0][0]
        walls.append(time.perf_counter() - started)
        cpus.append(cpu_s() - cpu)
    print(
        json.dumps(
            {
                "positions": args.positions,
                "failing": failing,
                **timing_summary(walls, cpus),
            }
        )
    )


if __name__ == "__main__":
    main()
