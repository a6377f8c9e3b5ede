"""BASELINE, not our pipeline: dlt's JSON normalizer loading DuckDB, fed the same raw pages. dlt unnests
the nested items into child tables itself; we give it the playlist items with their playlist id."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dlt

from . import page_items


def run(raw_files: list[str], out: Path) -> int:
    count = 0

    def items() -> Iterator[dict[str, Any]]:
        nonlocal count
        for record, position, item in page_items(raw_files):
            count += 1
            item.pop("track", None)  # the same object as `item`; keep one
            yield {"playlist_id": record["meta"]["playlist_id"], "position": position, **item}

    pipeline = dlt.pipeline(
        pipeline_name="bench_dlt",
        destination=dlt.destinations.duckdb(str(out / "dlt.duckdb")),
        dataset_name="spotify",
        pipelines_dir=str(out / "pipelines"),
    )
    pipeline.run(dlt.resource(items(), name="playlist_items", write_disposition="replace"))
    return count
