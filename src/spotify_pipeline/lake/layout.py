"""Every path in the lake comes from these pure functions, so the layout is written down in one place.

raw/<entity>/extracted_date=YYYY-MM-DD/run_id=<run_id>/part-NNNNN.jsonl.gz   API responses, as received
raw/history_export/.../run_id=<run_id>/part-NNNNN.parquet                  a history import, typed (lossless)
raw/_manifests/extracted_date=YYYY-MM-DD/run_id=<run_id>.json                what a run wrote (last)
warehouse/...                                                              Iceberg table files
catalog.db                                                                 the embedded Iceberg catalog
_state/extract_state.json                                                  snapshot ids, enrichment times
_state/publish.json                                                        a publish in progress (transform/journal.py)
_state/import.json                                                         an import not yet published (importer.py)
"""

from __future__ import annotations

import datetime as dt
import re

RAW_ENTITIES = (
    "playlists",
    "playlist_checks",
    "playlist_items",
    "artists",
    "albums",
    "me",
    "me_playlists",
    "saved_tracks",
    "recently_played",
    "top_items",
    "tracks",  # listened songs looked up for their album and artists (`/tracks`, under a budget per run)
    "history_export",  # listening history from a Spotify data download (history/importer.py)
)
# Written all at once with the manifest last (an import is all or nothing): parts without a manifest are
# an aborted import, never finalised by recovery.
ATOMIC_ENTITIES = ("history_export",)
_RUN_ID_RE = re.compile(r"^\d{8}T\d{6}Z-[0-9a-f]{6}$")


def new_run_id(now: dt.datetime, suffix: str) -> str:
    """A sortable run id: UTC start time plus 6 hex characters, e.g. `20261126T101500Z-3fa2c1`."""
    return f"{now.astimezone(dt.UTC):%Y%m%dT%H%M%SZ}-{suffix}"


def is_run_id(text: str) -> bool:
    return bool(_RUN_ID_RE.match(text))


def raw_prefix(entity: str, extracted_date: dt.date | None = None, run_id: str | None = None) -> str:
    prefix = f"raw/{entity}/"
    if extracted_date is not None:
        prefix += f"extracted_date={extracted_date.isoformat()}/"
        if run_id is not None:
            prefix += f"run_id={run_id}/"
    return prefix


def raw_part_key(entity: str, extracted_date: dt.date, run_id: str, part: int, suffix: str = ".jsonl.gz") -> str:
    """A part file's key; `suffix` `.parquet` for the columnar history parts (history/raw_parts.py)."""
    if entity not in RAW_ENTITIES:
        raise ValueError(f"unknown raw entity {entity!r}")
    return f"{raw_prefix(entity, extracted_date, run_id)}part-{part:05d}{suffix}"


def manifest_key(extracted_date: dt.date, run_id: str) -> str:
    return f"raw/_manifests/extracted_date={extracted_date.isoformat()}/run_id={run_id}.json"


def checkpoint_key(run_id: str, number: int) -> str:
    return f"{CHECKPOINT_PREFIX}run_id={run_id}/checkpoint-{number:05d}.json"


def run_id_of(key: str) -> str | None:
    """The run id in a raw part, checkpoint or manifest key."""
    match = re.search(r"run_id=([^/]+?)(?:/|\.json$)", key)
    return match.group(1) if match else None


MANIFEST_PREFIX = "raw/_manifests/"
CHECKPOINT_PREFIX = "raw/_checkpoints/"
STATE_KEY = "_state/extract_state.json"
PUBLISH_JOURNAL_KEY = "_state/publish.json"
IMPORT_PENDING_KEY = "_state/import.json"
WAREHOUSE_DIR = "warehouse"
CATALOG_FILE = "catalog.db"
