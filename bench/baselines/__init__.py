"""Baselines to compare against, run on the same raw pages (clearly not our pipeline)."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from typing import Any


def page_items(raw_files: list[str]) -> Iterator[tuple[dict[str, Any], int, dict[str, Any]]]:
    """(raw record, position, playlist item) for every item of every stored page, read the plain way."""
    for path in raw_files:
        with gzip.open(path, "rt", encoding="utf-8") as handle:
            for line in handle:
                record = json.loads(line)
                body = record["body"]
                page = body.get("items") if isinstance(body.get("items"), dict) else body
                if not isinstance(page.get("items"), list):
                    continue
                for position, item in enumerate(page["items"], start=page.get("offset", 0)):
                    yield record, position, item
