"""What a run pays to parse its snapshot checks (issue #20): every run checks every unchanged playlist, ~100k
checks at 10M items, and `build_batch` parses them all into `raw_playlist_checks`. Here N checks are written
as the extractor stores them (`bench.generate.check_body`, with whichever `CHECK_FIELDS` the `spotify_pipeline`
on the path asks for) into 13 gzip part files, as a 10M run's, and that one statement is timed.

    PYTHONPATH=<side>/src:. python -m bench.check_parse --playlists 99950 --repeat 5 --dir D

Run once per side (main's `src/`, a branch's), interleaved: the ratio of the two is the change's.
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import json
import resource
import statistics
import time
from pathlib import Path
from typing import Any

from bench.generate import check_body, check_url
from spotify_pipeline.simulator import Catalog, CatalogConfig
from spotify_pipeline.transform.batch import _raw_select
from spotify_pipeline.transform.connection import connect

PARTS = 13  # a 10M run's checks came in 13 part files (docs/BENCHMARKS.md)


def write_checks(folder: Path, playlists: int) -> list[str]:
    """`playlists` checks of a catalog of that many ~100-item playlists, in `PARTS` gzip files."""
    catalog = Catalog(CatalogConfig(seed=42, playlists=playlists, items_per_playlist=100))
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"part-{i:02d}.jsonl.gz" for i in range(PARTS)]
    with contextlib.ExitStack() as stack:
        outs = [stack.enter_context(gzip.open(p, "wb", compresslevel=6)) for p in paths]
        for index in range(playlists):
            pid = catalog.id_of("playlist", index)
            _, body = check_body(catalog, index, catalog._base_size(index))
            meta = {  # as bench.generate.write_run writes it
                "run_id": "20261101T130000Z-000003",
                "entity": "playlist_checks",
                "endpoint": "playlist",
                "url": check_url(pid),
                "status": 200,
                "fetched_at": "2026-11-01T13:00:00+00:00",
                "playlist_id": pid,
            }
            line = b'{"meta":' + json.dumps(meta, ensure_ascii=False).encode()
            outs[index * PARTS // playlists].write(line + b',"body":' + body + b"}\n")
    return [str(p) for p in paths]


def cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def timing_summary(walls: list[float], cpus: list[float]) -> dict[str, Any]:
    """The repeats' medians, every CPU time, and the machine's load: what a statement benchmark prints."""
    return {
        "wall_s_median": round(statistics.median(walls), 3),
        "cpu_s_median": round(statistics.median(cpus), 3),
        "cpu_s": [round(c, 3) for c in cpus],
        "load": Path("/proc/loadavg").read_text().split()[:3],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--playlists", type=int, default=99_950)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--dir", type=Path, required=True, help="where the check files go (rewritten)")
    args = parser.parse_args()
    files = write_checks(args.dir, args.playlists)
    walls, cpus = [], []
    for _ in range(args.repeat):
        con = connect()
        started, cpu = time.perf_counter(), cpu_s()
        con.execute(f"CREATE TEMP TABLE raw_playlist_checks AS {_raw_select('playlist_checks', files)}")
        walls.append(time.perf_counter() - started)
        cpus.append(cpu_s() - cpu)
        rows = con.execute("SELECT count(*) FROM raw_playlist_checks").fetchall()[0][0]
        con.close()
    print(
        json.dumps(
            {
                "checks": rows,
                "bytes_json": sum(len(gzip.decompress(Path(f).read_bytes())) for f in files),
                **timing_summary(walls, cpus),
            }
        )
    )


if __name__ == "__main__":
    main()
