"""catalog.db held by another process's lock for longer than Python's default 5 s busy timeout (a commit on
a machine loaded far past its cores) delays a commit; it does not fail it with "database is locked"."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pyarrow as pa

from spotify_pipeline.lake.layout import CATALOG_FILE
from spotify_pipeline.tables.catalog import Catalog
from spotify_pipeline.tables.contract import TABLES


def test_a_commit_waits_for_a_lock_held_past_five_seconds(tmp_path: Path) -> None:
    catalog = Catalog(tmp_path)
    rows = pa.Table.from_pylist(
        [{"raw_run_id": "r1", "processed_at": None, "by_run_id": "t"}], schema=TABLES["processed_raw_runs"].schema
    )
    catalog.append("processed_raw_runs", rows)
    holder = sqlite3.connect(tmp_path / CATALOG_FILE, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN EXCLUSIVE")  # what a writer holds while it commits
    release = threading.Timer(7.0, holder.execute, ["COMMIT"])
    release.start()
    try:
        Catalog(tmp_path).append("processed_raw_runs", rows)  # blocks until the lock is released
    finally:
        release.join()
        holder.close()
    assert Catalog(tmp_path).read("processed_raw_runs").num_rows == 2
