"""After `bench.steady_state` (issue #20): on its lake, the reports' p50 latency after the week of runs,
then (when tables have position delete files) again after `maintain` folded them into the data files (what
deletes cost readers), then a full rebuild (timed, against DuckDB only parsing the item pages), then the
reports' p50 again on the freshly written tables: the week's files against the layout a rebuild writes.
Ratios in one run.

Two readers, as the clients use them: views over the Parquet files (`query`, `Lake.report`, export, checks:
`report_p50_s`), and an engine that loads the tables into memory once (the dashboard, `serve`, the HTML
report: `in_memory_open_s`, the load, and `in_memory_report_p50_s`). Per report the wall p50, and the p50
of the process's CPU seconds (`..._cpu_s`: every DuckDB thread's), which a machine shared with other jobs
disturbs less than wall time. `--p50-only` measures the lake as it is (no maintain, no rebuild): to compare
two versions of the code on one lake, alternate them.

    python -m bench.steady_reports --lake /tmp/steady-lake --out reports.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

from bench.run import parse_floor, table_bytes, timed
from spotify_pipeline.lake import LocalStorage
from spotify_pipeline.query.engine import QueryEngine
from spotify_pipeline.reports import REPORT_ORDER, run_report
from spotify_pipeline.tables.catalog import Catalog
from spotify_pipeline.tables.maintenance import maintain
from spotify_pipeline.transform import transform


def report_p50(lake: Path, repeat: int, *, in_memory: bool = False) -> dict[str, dict[str, float]]:
    """Median wall and CPU seconds per report, the engine opened once (as the dashboard and `serve` do); the
    reports take turns, so a burst of load on the machine spreads over all of them."""
    wall: dict[str, list[float]] = {name: [] for name in REPORT_ORDER}
    cpu: dict[str, list[float]] = {name: [] for name in REPORT_ORDER}
    with QueryEngine(Catalog(lake), in_memory=in_memory) as engine:
        for _ in range(repeat):
            for name in REPORT_ORDER:
                started, started_cpu = time.perf_counter(), time.process_time()
                run_report(engine, name)
                wall[name].append(time.perf_counter() - started)
                cpu[name].append(time.process_time() - started_cpu)
    return {
        "wall": {name: round(statistics.median(wall[name]), 4) for name in REPORT_ORDER},
        "cpu": {name: round(statistics.median(cpu[name]), 4) for name in REPORT_ORDER},
    }


def readers(lake: Path, repeat: int) -> dict[str, Any]:
    """Both readers' p50s, and the time to open (load) the in-memory engine (median of 3)."""
    views = report_p50(lake, repeat)
    opens, _ = timed(lambda: QueryEngine(Catalog(lake), in_memory=True).close(), 3)
    loaded = report_p50(lake, repeat, in_memory=True)
    return {
        "report_p50_s": views["wall"],
        "report_p50_cpu_s": views["cpu"],
        "in_memory_open_s": round(statistics.median(opens), 3),
        "in_memory_report_p50_s": loaded["wall"],
        "in_memory_report_p50_cpu_s": loaded["cpu"],
    }


P50_KEYS = ("report_p50_s", "report_p50_cpu_s", "in_memory_report_p50_s", "in_memory_report_p50_cpu_s")


def ratios(over: dict[str, Any], under: dict[str, Any]) -> dict[str, Any]:
    """`over`'s p50s over `under`'s, per report, with their median and max, and the in-memory open's ratio."""
    result: dict[str, Any] = {}
    for key in P50_KEYS:
        per_report = {n: round(over[key][n] / max(under[key][n], 1e-9), 2) for n in over[key]}
        values = list(per_report.values())
        result[key] = {"median": round(statistics.median(values), 2), "max": max(values), "reports": per_report}
    result["in_memory_open_s"] = round(over["in_memory_open_s"] / max(under["in_memory_open_s"], 1e-9), 2)
    return result


def data_files(lake: Path) -> int:
    catalog = Catalog(lake)
    return sum(len(catalog.data_files(name)) for name in catalog.table_names())


def deleted_share(lake: Path) -> float:
    """The share of the rows in the tables' data files that delete files mark deleted: rows every view reads
    and then drops."""
    catalog = Catalog(lake)
    records = sum(sum(catalog.files(name).records) for name in catalog.table_names())
    with QueryEngine(catalog) as engine:
        live = sum(int(engine.execute(f"SELECT count(*) FROM {name}").rows[0][0]) for name in catalog.table_names())
    return round(1 - live / max(records, 1), 3)


def delete_files(lake: Path) -> int:
    catalog = Catalog(lake)
    return sum(len(catalog.files(name).deletes) for name in catalog.table_names())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lake", type=Path, required=True)
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--p50-only", action="store_true", help="measure the lake as it is: no maintain, no rebuild")
    args = parser.parse_args()
    lake = args.lake
    result: dict[str, Any] = {"after_runs": {"data_files": data_files(lake), "table_bytes": table_bytes(lake)}}
    result["after_runs"]["delete_files"] = delete_files(lake)
    result["after_runs"]["deleted_share"] = deleted_share(lake)
    result["after_runs"] |= readers(lake, args.repeat)
    if args.p50_only:
        print(json.dumps(result, indent=1))
        if args.out:
            args.out.write_text(json.dumps(result, indent=1))
        return
    if result["after_runs"]["delete_files"]:  # the same rows with the deletes folded in: what they cost readers
        maintain(LocalStorage(lake), Catalog(lake), keep_days=365)
        result["maintained"] = {"data_files": data_files(lake), "delete_files": delete_files(lake)}
        result["maintained"] |= readers(lake, args.repeat)
        result["with_deletes_over_maintained"] = ratios(result["after_runs"], result["maintained"])
    floor, _ = timed(lambda: parse_floor(lake, everything=False), 1)
    started = time.perf_counter()
    transform(LocalStorage(lake), Catalog(lake), rebuild=True)
    result["rebuild_s"] = round(time.perf_counter() - started, 3)
    result["parse_item_pages_s"] = round(floor[0], 3)
    result["rebuild_vs_parse_item_pages"] = round(result["rebuild_s"] / floor[0], 2)
    result["rebuilt"] = {"data_files": data_files(lake), "table_bytes": table_bytes(lake)}
    result["rebuilt"] |= readers(lake, args.repeat)
    result["after_runs_over_rebuilt"] = ratios(result["after_runs"], result["rebuilt"])
    print(json.dumps(result, indent=1))
    if args.out:
        args.out.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
