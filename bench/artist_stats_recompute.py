"""`artist_stats` recomputed whole on a lake's tables: the SQL before issue #20's tenth round (`old`: one join
of every position to every credit, two `count(DISTINCT ...)`), today's SQL in one pass (`new`:
`ARTIST_STATS_SQL`, plain GROUP BYs), and what the transform runs (`passes`: `merge.stage_derived`, that SQL
over slices of the artists, `artist_stats.stage_whole`), under DuckDB memory caps. Each (variant, cap) runs
in a child process, so its peak RSS (VmHWM) is its own; the variants alternate per cap, so a shared
machine's load swings them alike. The rows are compared by a checksum (count and a sum of row hashes).

    python -m bench.artist_stats_recompute --lake L --caps 1GB,2GB,none [--variants old,new,passes]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess  # nosec B404 - runs this module again as a child, with fixed arguments
import sys
import time
from pathlib import Path

# The SQL up to the ninth round (transform/artist_stats.py), kept here to measure against.
ONE_JOIN_SQL = """SELECT sa.artist_id, count(*) AS appearances, count(DISTINCT ps.playlist_id) AS playlists,
                  count(DISTINCT ps.song_id) AS songs
           FROM new_playlist_songs ps JOIN new_song_artists sa ON sa.song_id = ps.song_id
           GROUP BY sa.artist_id"""


def child(lake: Path, which: str, cap: str, spill: Path) -> dict[str, object]:
    """Recompute into a temp table as `merge.stage_derived` does; wall, peak RSS, rows and checksum."""
    from bench.child import peak_rss_kib
    from spotify_pipeline.tables.catalog import Catalog
    from spotify_pipeline.transform.artist_stats import ARTIST_STATS_SQL
    from spotify_pipeline.transform.connection import connect, register_table
    from spotify_pipeline.transform.merge import stage_derived

    os.environ.pop("SPOTIFY_PIPELINE_MEMORY_LIMIT", None)
    catalog = Catalog(lake)
    con = connect(memory_limit="" if cap == "none" else cap, spill_under=spill)
    register_table(con, catalog, "playlist_songs", "new_playlist_songs")
    register_table(con, catalog, "song_artists", "new_song_artists")
    sql = ONE_JOIN_SQL if which == "old" else ARTIST_STATS_SQL.format(where="")
    out: dict[str, object] = {"sql": which, "cap": cap}
    started = time.perf_counter()
    try:
        if which == "passes":
            stage_derived(con, "artist_stats")
        else:
            con.execute(f"CREATE TEMP TABLE staged_artist_stats AS {sql}")
    except Exception as exc:  # an out-of-memory error is a result here, not a failure of the benchmark
        out["error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:160]}"
    out["wall_s"] = round(time.perf_counter() - started, 2)
    if "error" not in out:
        rows, checksum = con.execute(
            "SELECT count(*), sum(hash(artist_id, appearances, playlists, songs) % 1000000007) FROM staged_artist_stats"
        ).fetchall()[0]
        out.update(rows=rows, checksum=int(checksum))
    out["peak_rss_mib"] = round(peak_rss_kib() / 1024)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lake", type=Path, required=True)
    parser.add_argument("--caps", default="1GB,2GB,none", help="DuckDB memory_limit values, 'none' for its default")
    parser.add_argument("--spill", type=Path, default=None, help="spill folder parent (default: the lake's _state)")
    parser.add_argument("--variants", default="old,new,passes")
    parser.add_argument("--child", nargs=2, metavar=("SQL", "CAP"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    spill = args.spill or args.lake / "_state"
    if args.child:
        print(json.dumps(child(args.lake, args.child[0], args.child[1], spill)), flush=True)
        return
    results = []
    for cap in args.caps.split(","):
        for which in args.variants.split(","):
            command = [sys.executable, "-m", "bench.artist_stats_recompute", "--lake", str(args.lake)]
            command += ["--spill", str(spill), "--child", which, cap]
            done = subprocess.run(command, capture_output=True, text=True, check=False)  # nosec B603
            line = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""
            result = json.loads(line) if line.startswith("{") else {"sql": which, "cap": cap, "failed": done.stderr}
            print(json.dumps(result), flush=True)
            results.append(result)
    checks = {r.get("checksum") for r in results if "checksum" in r}
    print(json.dumps({"same_rows": len(checks) == 1, "uptime": os.getloadavg()}))


if __name__ == "__main__":
    main()
