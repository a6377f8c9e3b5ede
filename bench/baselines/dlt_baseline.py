"""BASELINE, not our pipeline: dlt's JSON normalizer loading DuckDB, fed the same raw pages. dlt unnests
the nested items into child tables itself; we give it the playlist items with their playlist id."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dlt


def run(raw_files: list[str], out: Path) -> int:
    count = 0

    def items() -> Iterator[dict[str, Any]]:
        nonlocal count
        for path in raw_files:
            with gzip.open(path, "rt", encoding="utf-8") as handle:
                for line in handle:
                    record = json.loads(line)
                    body = record["body"]
                    page = body.get("items") if isinstance(body.get("items"), dict) else body
                    if not isinstance(page.get("items"), list):
                        continue
                    for position, item in enumerate(page["items"], start=page.get("offset", 0)):
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
