"""After `bench.steady_state` (issue #20): on its lake, the reports' p50 latency after the week of runs,
then (when tables have position delete files) again after `maintain` folded them into the data files (what
deletes cost readers), then a full rebuild (timed, against DuckDB only parsing the item pages), then the
reports' p50 again on the freshly written tables: the week's files against the layout a rebuild writes.
Ratios in one run.

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


def report_p50(lake: Path, repeat: int) -> dict[str, float]:
    """Median seconds per report, the engine opened once (as the dashboard does)."""
    with QueryEngine(Catalog(lake)) as engine:
        return {
            name: round(statistics.median(timed(lambda name=name: run_report(engine, name), repeat)[0]), 4)
            for name in REPORT_ORDER
        }


def data_files(lake: Path) -> int:
    catalog = Catalog(lake)
    return sum(len(catalog.data_files(name)) for name in catalog.table_names())


def delete_files(lake: Path) -> int:
    catalog = Catalog(lake)
    return sum(len(catalog.files(name).deletes) for name in catalog.table_names())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lake", type=Path, required=True)
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    lake = args.lake
    result: dict[str, Any] = {"after_runs": {"data_files": data_files(lake), "table_bytes": table_bytes(lake)}}
    result["after_runs"]["delete_files"] = delete_files(lake)
    result["after_runs"]["report_p50_s"] = report_p50(lake, args.repeat)
    if result["after_runs"]["delete_files"]:  # the same rows with the deletes folded in: what they cost readers
        maintain(LocalStorage(lake), Catalog(lake), keep_days=365)
        result["maintained"] = {"data_files": data_files(lake), "delete_files": delete_files(lake)}
        result["maintained"]["report_p50_s"] = report_p50(lake, args.repeat)
        with_deletes, folded = result["after_runs"]["report_p50_s"], result["maintained"]["report_p50_s"]
        result["report_p50_with_deletes_over_maintained"] = {
            n: round(with_deletes[n] / max(folded[n], 1e-9), 2) for n in with_deletes
        }
    floor, _ = timed(lambda: parse_floor(lake, everything=False), 1)
    started = time.perf_counter()
    transform(LocalStorage(lake), Catalog(lake), rebuild=True)
    result["rebuild_s"] = round(time.perf_counter() - started, 3)
    result["parse_item_pages_s"] = round(floor[0], 3)
    result["rebuild_vs_parse_item_pages"] = round(result["rebuild_s"] / floor[0], 2)
    result["rebuilt"] = {"data_files": data_files(lake), "table_bytes": table_bytes(lake)}
    result["rebuilt"]["report_p50_s"] = report_p50(lake, args.repeat)
    after, rebuilt = result["after_runs"]["report_p50_s"], result["rebuilt"]["report_p50_s"]
    result["report_p50_after_runs_over_rebuilt"] = {n: round(after[n] / max(rebuilt[n], 1e-9), 2) for n in after}
    print(json.dumps(result, indent=1))
    if args.out:
        args.out.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
