"""When should a keyed replace rewrite a data file instead of marking rows deleted (tables/replace.py
`REWRITE_SHARE`)? For shares of a `songs` file's rows replaced: the bytes and time of the replace, and the
time to read the table afterwards, by merge-on-read (a position delete file) and by copy-on-write (the file
rewritten). Ratios in one run.

    python -m bench.deletes_share --lake /tmp/steady-lake     # the songs of an existing lake
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from spotify_pipeline.tables import replace
from spotify_pipeline.tables.catalog import Catalog
from spotify_pipeline.transform.connection import connect, register_table

SHARES = (0.01, 0.05, 0.1, 0.2, 1 / 3, 0.5, 0.75)
READ = "SELECT count(*), max(name), sum(duration_ms), max(last_seen_at) FROM songs"


def read_s(catalog: Catalog, repeat: int) -> float:
    """Median seconds of a query scanning the whole table through its DuckDB view (the view made once)."""
    con = connect()
    register_table(con, catalog, "songs", "songs")
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        con.execute(READ).fetchall()
        times.append(time.perf_counter() - started)
    con.close()
    return statistics.median(times)


def one(rows: Any, share: float, rewrite_share: float, repeat: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="share-") as tmp:
        catalog = Catalog(Path(tmp))
        catalog.overwrite("songs", rows)  # one file
        ids = rows.column("song_id").to_pylist()
        keys = random.Random(7).sample(ids, max(1, int(len(ids) * share)))
        changed = rows.filter(replace_mask(rows, keys))
        before = {p: p.stat().st_size for p in Path(tmp).rglob("*") if p.is_file()}
        replace.REWRITE_SHARE = rewrite_share
        started = time.perf_counter()
        catalog.replace_rows("songs", "song_id", keys, changed.to_batches())
        wall = time.perf_counter() - started
        after = {p: p.stat().st_size for p in Path(tmp).rglob("*") if p.is_file()}
        written = sum(s for p, s in after.items() if p not in before and "/data/" in str(p))
        return {"replace_s": round(wall, 3), "data_bytes_written": written, "read_s": round(read_s(catalog, repeat), 4)}


def replace_mask(rows: Any, keys: list[str]) -> Any:
    import pyarrow as pa
    import pyarrow.compute as pc

    return pc.is_in(rows.column("song_id"), pa.array(keys))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lake", type=Path, required=True, help="a lake whose songs table is used (read only)")
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    rows = Catalog(args.lake).read("songs")
    result: dict[str, Any] = {"songs_rows": rows.num_rows, "shares": {}}
    for share in SHARES:
        deletes = one(rows, share, 1.0, args.repeat)
        rewrite = one(rows, share, 0.0, args.repeat)
        result["shares"][f"{share:.2f}"] = {
            "merge_on_read": deletes,
            "copy_on_write": rewrite,
            "read_deletes_over_rewritten": round(deletes["read_s"] / rewrite["read_s"], 2),
            "replace_deletes_over_rewritten": round(deletes["replace_s"] / rewrite["replace_s"], 2),
        }
        print(f"{share:.2f}", json.dumps(result["shares"][f"{share:.2f}"]), flush=True)
    if args.out:
        args.out.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
