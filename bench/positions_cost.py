"""What parsing the playlist pages into position rows costs beyond the parse itself (issue #20's rebuild
target): one batch's files parsed only (the floor), parsed into the transform's `batch_positions` table, the
same without the nested track object, and alternatives measured for it. CPU seconds of this process (user +
sys, every thread: a shared machine's load swings the walls far more), best of `--repeat`.

    python -m bench.positions_cost --lake L --files 118 --repeat 2     # ~1/4 of a 1M lake: one 1 GiB batch
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from bench.rebuild_ratio import cpu_s
from bench.run import raw_files
from spotify_pipeline.transform.connection import connect
from spotify_pipeline.transform.positions import _positions_sql, playlist_header
from spotify_pipeline.transform.raw import CURRENT_PAGE, CURRENT_PLAYLIST, raw_relation


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lake", type=Path, required=True)
    parser.add_argument("--files", type=int, default=10**9, help="the first N files of each entity")
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    playlists = sorted(raw_files(args.lake, ("playlists",)))[: args.files]
    pages = sorted(raw_files(args.lake, ("playlist_items",)))[: args.files]
    con = connect()
    con.execute(
        "CREATE TEMP TABLE complete AS SELECT DISTINCT meta.run_id AS run_id, meta.playlist_id AS playlist_id,"
        " meta.snapshot_id AS snapshot_id FROM " + raw_relation("playlists", playlists, {"id": "VARCHAR"})
    )
    p = raw_relation("playlists", playlists, CURRENT_PLAYLIST, filename=True)
    g = raw_relation("playlist_items", pages, CURRENT_PAGE, filename=True)
    positions = _positions_sql(p, g, current=True, files=[*playlists, *pages])
    in_scan = f"""SELECT it.item.id AS song_id, arg_max(it.item, fetched_at) AS obj, max(fetched_at) AS last_seen_at,
        min(fetched_at) AS first_seen_at, list({{'run_id': run_id, 'playlist_id': playlist_id, 'idx': idx,
        'added_at': it.added_at, 'added_by': it.added_by.id}}) AS positions
        FROM (SELECT unnest(body.items.items) AS it, generate_subscripts(body.items.items, 1) AS idx, fetched_at,
                     run_id, meta.playlist_id AS playlist_id, {playlist_header("body")} AS header FROM {p})
        GROUP BY ALL"""
    queries = {
        "parse only (the floor's query)": f"SELECT (SELECT sum(len(body.items.items)) FROM {p}) + "
        f"(SELECT sum(len(body.items)) FROM {g})",
        "batch_positions (the transform's)": f"CREATE OR REPLACE TEMP TABLE x AS {positions}",
        "batch_positions without the track object": f"CREATE OR REPLACE TEMP TABLE x AS SELECT * EXCLUDE (obj), "
        f"obj.id FROM ({positions})",
        "positions, counted, nothing stored": f"SELECT count(*), count(item_type), count(header) FROM ({positions})",
        "playlist files only: fold into songs in the scan (grouped by song, positions as lists)": "CREATE OR "
        f"REPLACE TEMP TABLE x AS {in_scan}",
        "playlist files only: positions with the track object": "CREATE OR REPLACE TEMP TABLE x AS "
        + _positions_sql(p, raw_relation("playlist_items", [], CURRENT_PAGE, filename=True), True, playlists),
    }
    result: dict[str, object] = {"playlist_files": len(playlists), "page_files": len(pages)}
    for name, sql in queries.items():
        best = None
        for _ in range(args.repeat):
            started, cpu = time.perf_counter(), cpu_s()
            con.execute(sql).fetchall()
            took = (round(cpu_s() - cpu, 2), round(time.perf_counter() - started, 2))
            best = took if best is None or took < best else best
        result[name] = {"cpu_s": best[0], "wall_s": best[1]} if best else None
        print(name, best, flush=True)
    # Both read the same items: the floor's count and the rows of the table the transform builds.
    result["items"] = con.execute(queries["parse only (the floor's query)"]).fetchall()[0][0] or 0
    con.execute(f"CREATE OR REPLACE TEMP TABLE x AS {positions}")
    result["positions"] = con.execute("SELECT count(*) FROM x WHERE has_items").fetchall()[0][0]
    con.close()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
