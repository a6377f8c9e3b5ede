"""What catalog.db records, read without opening the catalog through pyiceberg (which would create its schema
in an empty file): each table's current metadata file, the newest one in the warehouse when catalog.db is
lost, and the lake a recorded path belongs to (a copied or moved lake still points at its origin)."""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path
from urllib.parse import unquote

from ..errors import LakeError
from ..lake.layout import WAREHOUSE_DIR

NAMESPACE = "spotify"
CATALOG_NAME = "spotify_pipeline"  # the catalog_name column of catalog.db's rows
# How long a catalog.db connection waits for another process's lock (a commit, or the rollback of a journal a
# killed writer left) before failing with "database is locked". Python's default, 5 s, is within reach of a
# commit's lock on a machine loaded far past its cores (a CI run on 2 cores failed `check` so once).
SQLITE_BUSY_S = 60.0


def sqlite_uri(db: Path) -> str:
    """The SQLAlchemy URI of catalog.db, with `SQLITE_BUSY_S` as its busy timeout."""
    return f"sqlite:///{db}?timeout={SQLITE_BUSY_S:g}"


def recorded_tables(db: Path) -> dict[str, str]:
    """Each table's current metadata file as catalog.db records it ({} when it records none), read
    without opening the catalog (which would create its schema in an empty file)."""
    try:
        # mode=rw, not ro: never creates the file, yet can roll back the journal a writer killed mid-commit left
        # (a read-only connection cannot, and fails); on a write-protected file SQLite opens it read-only.
        with contextlib.closing(sqlite3.connect(f"{db.as_uri()}?mode=rw", uri=True, timeout=SQLITE_BUSY_S)) as con:
            rows = con.execute(
                "SELECT table_name, metadata_location FROM iceberg_tables"
                " WHERE catalog_name = ? AND table_namespace = ?",
                (CATALOG_NAME, NAMESPACE),
            ).fetchall()
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return {}
        raise _unreadable(db, exc) from exc
    except sqlite3.DatabaseError as exc:
        raise _unreadable(db, exc) from exc
    return {str(name): str(location) for name, location in rows}


def _unreadable(db: Path, exc: Exception) -> LakeError:
    return LakeError(f"cannot read the table catalog {db}: {exc}", hint=lost_catalog_hint(db.parent))


def lost_catalog_hint(root: Path) -> str:
    return (
        f"run `spotify-pipeline repair --lake {root}` to register the tables again from warehouse/ with their "
        "history, or restore catalog.db from a backup; moving catalog.db and warehouse/ aside and running "
        "`spotify-pipeline transform --rebuild` rebuilds the tables from the raw zone, without the run history"
    )


def newest_metadata(root: Path) -> dict[str, Path]:
    """Each table folder of the warehouse with its newest metadata file (`NNNNN-<uuid>.metadata.json`, the
    number counting the table's commits): what catalog.db pointed to, unless a commit died half-way."""
    newest: dict[str, tuple[int, Path]] = {}
    for path in (root / WAREHOUSE_DIR / NAMESPACE).glob("*/metadata/*.metadata.json"):
        version = path.name.partition("-")[0]
        if version.isdigit():
            table = path.parent.parent.name
            if table not in newest or int(version) > newest[table][0]:
                newest[table] = (int(version), path)
    return {table: path for table, (_, path) in sorted(newest.items())}


def origin_of(location: str) -> str:
    """The lake folder a recorded table path belongs to (`file:///old/lake/warehouse/...` -> `/old/lake`)."""
    path = unquote(_local(location))  # lakes made before `warehouse_uri` stopped encoding
    head, sep, _ = path.rpartition(f"/{WAREHOUSE_DIR}/{NAMESPACE}/")
    return head if sep else path


def _local(path: str) -> str:
    return path.removeprefix("file://")
