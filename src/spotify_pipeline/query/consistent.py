"""Which snapshot of each table a reader opens, so that it never sees half a publish.

A transform commits its tables one at a time (Iceberg has no multi-table commit): between its first and last
commit the lake holds some tables of the new run and some of the previous one, and a reader opening then
would join the new `playlists` with the old `playlist_songs`. The publish journal (transform/journal.py)
exists for exactly that span, on every host and after any crash: written before the first commit, deleted
after the last, it records every table the publish commits as it stood before (`before`). So a reader:

1. reads the journal: while there is one (a publish under way, or one that died half-way, which the next
   transform redoes), it opens the published tables at `before` and every other table at its current
   snapshot (those are committed one at a time, each whole on its own: quality_results, ...), except
   `pipeline_runs` when the publish appends a run's line to it (its last commit, marked): then every line
   appended since `before` up to the first marked one, so that a run's line appears with its tables while
   the lines of runs that failed meanwhile (appended unmarked, outside any publish) show at once;
2. otherwise reads each table's metadata location (a new file at every commit: one catalog read), each table's
   current snapshot id, the journal again, then the locations again. No journal and the same locations twice
   mean no table was committed during the read, so the ids are those of one moment with no publish under way:
   one that had committed some tables before the first read and the rest after the second would have had its
   journal there all along.
   Else it tries again (a commit outside a publish is rare), and after `MAX_TRIES` (or
   SPOTIFY_PIPELINE_OPEN_TRIES) gives up with `TablesChanging` (the dashboard answers 503 with Retry-After).

Nothing here looks at the lake's lock: a run that is still extracting, or died on this host or another, has
changed nothing a reader sees. The same on S3 (the journal is an object beside the raw zone, the ids come from
Glue): `Lake.engine` opens those snapshots, `Lake.athena` names them to Athena (query/athena.py).
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import ConfigError, LakeError
from ..lake.layout import CATALOG_FILE, PUBLISH_JOURNAL_KEY
from ..lake.storage import LocalStorage, Storage
from ..tables.catalog import Catalog
from ..tables.catalog_db import recorded_tables
from ..transform.journal import RUNS_TABLE, read_journal, runs_shown

MAX_TRIES = 20
TRIES_ENV = "SPOTIFY_PIPELINE_OPEN_TRIES"  # fewer reads before giving up (tests: one commit in the window is enough)
Snapshots = dict[str, int | None]  # table -> snapshot id (None: the table is shown empty)


class TablesChanging(LakeError):
    """Tables kept being committed while a reader read where they stand (outside a journaled publish)."""


def consistent_snapshots(catalog: Catalog, tries: int | None = None, storage: Storage | None = None) -> Snapshots:
    """Every table's snapshot id such that none is half a publish: see the module's docstring. `tries`:
    default SPOTIFY_PIPELINE_OPEN_TRIES, else `MAX_TRIES`. `storage`: where the lake's journal is (by default
    the catalog's folder: a local lake)."""
    storage = storage or LocalStorage(catalog.root)
    for _ in range(tries or open_tries()):
        shown = _shown(storage)
        if shown is not None:
            if RUNS_TABLE in shown:
                shown[RUNS_TABLE] = _runs_before_publish(catalog, shown[RUNS_TABLE])
            return {**_current(catalog, skip=shown), **shown}
        first = catalog.metadata_locations()
        current = _current(catalog)
        if _shown(storage) is None and catalog.metadata_locations() == first:
            return current
    raise TablesChanging(
        f"the tables of the lake at {storage.uri('')} kept changing while they were being opened",
        hint="try again in a moment",
    )


def open_tries() -> int:
    """How many times a reader reads where the tables stand before `TablesChanging`."""
    text = os.environ.get(TRIES_ENV, "").strip()
    if not text:
        return MAX_TRIES
    if not text.isdigit() or int(text) < 1:
        raise ConfigError(f"invalid {TRIES_ENV} = {text!r}: not a whole number of at least 1", hint="unset it")
    return int(text)


def _shown(storage: Storage) -> Snapshots | None:
    """What an unfinished publish's journal says readers show (None: no journal, or one too old to say, or
    one that cannot be read: the next transform refuses it and says what to do; a reader shows the tables)."""
    try:
        journal = read_journal(storage)
    except LakeError:
        return None
    return None if journal is None else journal.shown()


def _runs_before_publish(catalog: Catalog, before: int | None) -> int | None:
    """The `pipeline_runs` snapshot readers show while a publish that appends a run's line is unfinished
    (transform/journal.py `runs_shown`); None: no such table."""
    return runs_shown(catalog.table(RUNS_TABLE), before) if RUNS_TABLE in catalog.table_names() else None


def _current(catalog: Catalog, skip: Snapshots | None = None) -> Snapshots:
    return {name: catalog.snapshot_id(name) for name in catalog.table_names() if name not in (skip or {})}


def change_stamp(root: Path) -> tuple[object, ...]:
    """Cheap (one SQLite read, one stat): differs whenever a table was committed or a publish began or
    ended since the last stamp. Each table's metadata file is new at every commit, so equal stamps mean
    `consistent_snapshots` would answer the same; a new stamp may still answer the same (a commit that only
    expired old snapshots, or one during a publish)."""
    db = root / CATALOG_FILE
    tables = tuple(sorted(recorded_tables(db).items())) if db.exists() else ()
    try:
        journal = os.stat(root / PUBLISH_JOURNAL_KEY)
    except FileNotFoundError:
        return (tables, None)
    return (tables, (journal.st_ino, journal.st_mtime_ns, journal.st_size))
