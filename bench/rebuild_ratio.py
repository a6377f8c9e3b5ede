"""Full rebuild against the parse floor on an existing lake (issue #20's target: rebuild <= 1.5x the time DuckDB
needs to read and parse the raw files), without regenerating the lake as `bench.run` does. The two are timed
in turns, so a load that comes and goes on a shared machine weighs on both alike; each also by the process's
CPU time (user + sys, every thread), which a heavy load swings far less than the walls.

    python -m bench.generate --items 1000000 --lake L      # once: one raw run of 1M items
    python -m bench.rebuild_ratio --lake L --repeat 3
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import time
from pathlib import Path

from bench.run import parse_floor
from spotify_pipeline import Lake
from spotify_pipeline.config import load_settings


def cpu_s() -> float:
    """CPU seconds this process has used so far (user + system, all its threads)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lake", type=Path, required=True)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    lake = Lake.open(settings=load_settings({"lake": str(args.lake)}, env={}))
    floor, pages, rebuild = [], [], []
    floor_cpu, pages_cpu, rebuild_cpu = [], [], []
    items = 0
    for _ in range(args.repeat):
        started, cpu = time.perf_counter(), cpu_s()
        items = parse_floor(args.lake)
        floor.append(time.perf_counter() - started)
        floor_cpu.append(cpu_s() - cpu)
        started, cpu = time.perf_counter(), cpu_s()
        parse_floor(args.lake, everything=False)
        pages.append(time.perf_counter() - started)
        pages_cpu.append(cpu_s() - cpu)
        started, cpu = time.perf_counter(), cpu_s()
        lake.transform(rebuild=True)
        rebuild.append(time.perf_counter() - started)
        rebuild_cpu.append(cpu_s() - cpu)
    result = {
        "items": items,
        "parse_floor_s": [round(t, 2) for t in floor],
        "parse_floor_item_pages_s": [round(t, 2) for t in pages],
        "rebuild_s": [round(t, 2) for t in rebuild],
        "rebuild_vs_parse_floor": round(statistics.median(rebuild) / statistics.median(floor), 2),
        "rebuild_vs_item_pages": round(statistics.median(rebuild) / statistics.median(pages), 2),
        "parse_floor_cpu_s": [round(t, 2) for t in floor_cpu],
        "parse_floor_item_pages_cpu_s": [round(t, 2) for t in pages_cpu],
        "rebuild_cpu_s": [round(t, 2) for t in rebuild_cpu],
        "rebuild_vs_parse_floor_cpu": round(statistics.median(rebuild_cpu) / statistics.median(floor_cpu), 2),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
