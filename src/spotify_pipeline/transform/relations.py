"""The transform's DuckDB temp relations, declared once: name, columns, the step that builds them, what it reads.

The transform is a chain of SQL steps over one in-memory DuckDB connection; each step reads relations an
earlier step built. Written down only as call order, that interface broke silently (a step reading a
relation not built yet, or built with a column renamed). Here it is data, and `checked_step` enforces it:
before a step runs, every relation it reads must exist (else `RelationError` naming it and its builder);
after, every relation it builds or changes must have exactly the declared columns, in order, and its scratch
relations must be gone. The check is one `duckdb_columns()` query (about 1 ms), so it always runs.

Steps, in the order the runner (transform/runner.py) calls them:

    load_runs            complete, complete_sources                       (runner: from the manifests)
    build_batch          raw_<entity>, item_rows, playlist_headers,        (batch.py)
                         empty_pages, *_partials, *_streaks, b_playlist_songs, b_songs, b_song_artists, b_albums,
                         b_album_artists, b_artists, b_playlists, b_song_popularity, e_playlist_songs,
                         rechecked_playlists
    register_<table>     old_<table>: the table as it stood when the transform began (publish.py)
                         (old_playlist_songs and old_playlist_changes before build_changes)
    drop_rechecked_playlists  drops from b_playlists the playlists only checked and found as stored (batch.py)
    build_changes        b_playlist_changes                                (changes.py)
    build_user_tables    b_saved_songs, b_plays, b_user_top                (user_tables.py)
    build_listen_events  b_listen_events                                   (history/listens.py)
    add_listened_songs   adds rows to b_songs                              (history/listens.py)
    scope_<table>        keys_<table>: the cluster-column values the batch can change; touched_<table>: the
                         old rows holding them (scope.py; all of old_<table> when merged whole)
    stage_<table>        staged_<table>: the merged rows of those values (merge.py), in DATA_TABLES order;
                         new_<table>: the whole table after the merge (a view)
    publish_<table>      commits staged_<table> (publish.py), after the quality checks; scratch
                         changed_<table>: the cluster-column values whose rows are replaced, for a
                         table merged whole but published by its changed keys only

`b_<table>` and `old_<table>` / `staged_<table>` have the table contract's columns (tables.py); the few extra
batch columns are listed below. Scratch relations live only inside their step (dropped before it returns).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import wraps
from typing import Concatenate, ParamSpec, TypeVar

import duckdb

from ..tables.catalog import cluster_column
from ..tables.contract import DATA_TABLES, TABLES
from .merge import MERGES, Derived, ReplaceChildren

log = logging.getLogger(__name__)


class RelationError(RuntimeError):
    """The transform's steps disagree with the declaration: a bug in the transform, never bad input."""


@dataclass(frozen=True)
class Relation:
    """One temp relation: its columns in order (empty for scratch ones) and the step that builds it."""

    name: str
    step: str
    columns: tuple[str, ...] = ()
    scratch: bool = False  # built and dropped inside its step: its columns are that step's business
    note: str = ""


@dataclass(frozen=True)
class Step:
    """One step of the transform: the relations it needs, and those it adds rows to (re-checked after)."""

    name: str
    reads: tuple[str, ...] = ()
    changes: tuple[str, ...] = ()


def _contract(table: str, *extra: str) -> tuple[str, ...]:
    return (*TABLES[table].schema.names, *extra)


# The raw records of each entity of the batch: a view over its part files (small strictly-read ones a table).
RAW_ENTITIES = (
    "playlists",
    "playlist_checks",
    "playlist_items",
    "artists",
    "albums",
    "saved_tracks",
    "recently_played",
    "top_items",
    "tracks",
)
RAW_COLUMNS = ("run_id", "fetched_at", "meta", "body")
_DECLARED: list[Relation] = [
    Relation(
        "complete",
        "load_runs",
        ("run_id", "playlist_id", "snapshot_id", "items", "manifest"),
        note="the (run, playlist) pairs whose items were completely extracted; `items`: positions read",
    ),
    Relation(
        "complete_sources",
        "load_runs",
        ("run_id", "source"),
        note="user sources (e.g. `liked`) each run fetched completely",
    ),
    *(
        Relation(f"raw_{e}", "build_batch", RAW_COLUMNS, note="typed raw records")
        for e in RAW_ENTITIES
        if e != "playlist_checks"
    ),
    Relation(
        "raw_playlist_checks",
        "build_batch",
        ("run_id", "fetched_at", "header"),
        note="the playlist header of each snapshot check (positions.py `playlist_header`), parsed once",
    ),
    Relation(
        "item_rows",
        "build_batch",
        (
            "run_id",
            "fetched_at",
            "playlist_id",
            "snapshot_id",
            "position",
            "added_at",
            "added_by",
            "item_type",
            "song_id",
            "item_uri",
            "item_name",
        ),
        note="every position of every complete extraction",
    ),
    Relation("playlist_headers", "build_batch", ("header", "fetched_at", "run_id"), note="playlist objects"),
    Relation(
        "empty_pages",
        "build_batch",
        ("run_id", "playlist_id", "fetched_at"),
        note="pages without items: an emptied playlist's complete extraction",
    ),
    Relation("song_partials", "build_batch", ("song_id", "song", "last_seen_at", "first_seen_at", "song_added")),
    Relation("popularity_partials", "build_batch", ("song_id", "observed_date", "popularity", "observed_at")),
    Relation("album_partials", "build_batch", ("album_id", "album", "enriched", "last_seen_at", "first_seen_at")),
    Relation("artist_partials", "build_batch", ("artist_id", "artist", "enriched", "last_seen_at", "first_seen_at")),
    *(
        Relation(name, "build_batch", (key, "h", "since", "until"), note="streaks of equal values (partials.py)")
        for name, key in (("song_streaks", "song_id"), ("album_streaks", "album_id"), ("artist_streaks", "artist_id"))
    ),
    Relation("b_playlist_songs", "build_batch", _contract("playlist_songs")),
    Relation("b_songs", "build_batch", _contract("songs")),
    Relation("b_song_artists", "build_batch", _contract("song_artists", "last_seen_at")),
    Relation("b_albums", "build_batch", _contract("albums")),
    Relation("b_album_artists", "build_batch", _contract("album_artists", "last_seen_at")),
    Relation("b_artists", "build_batch", _contract("artists")),
    Relation("b_playlists", "build_batch", _contract("playlists")),
    Relation(
        "rechecked_playlists",
        "build_batch",
        ("playlist_id",),
        note="playlists the batch only checked, each check the same as the one before (batch.py)",
    ),
    Relation("b_song_popularity", "build_batch", _contract("song_popularity")),
    Relation(
        "e_playlist_songs",
        "build_batch",
        ("playlist_id", "extracted_at"),
        note="playlists whose latest complete extraction in the batch had no items (merge.py `ReplaceChildren`)",
    ),
    *(
        Relation(name, "build_batch", scratch=True)
        for name in (
            "batch_positions",  # one playlist batch's parsed positions
            "batch_albums",  # one album batch's parsed albums
            "user_track_obs",  # the tracks of the user sources, to be folded
            "track_obs",  # the track observations being folded into the partials
            "album_obs",  # the album observations being folded
            "b_songs_full",
            "playlist_observations",  # every header and snapshot check of the batch, with the one before
            "checked_once",  # the checks of playlists the batch observed once, only checked (no window)
            "b_albums_full",
            "_screened",  # quarantine.py: a trial read of suspect files
            *(
                f"{p}_folded"
                for p in (
                    "song_partials",
                    "popularity_partials",
                    "album_partials",
                    "artist_partials",
                    "song_streaks",
                    "album_streaks",
                    "artist_streaks",
                )
            ),
        )
    ),
    Relation("b_playlist_changes", "build_changes", _contract("playlist_changes")),
    Relation("b_saved_songs", "build_user_tables", _contract("saved_songs")),
    Relation("b_plays", "build_user_tables", _contract("plays")),
    Relation("b_user_top", "build_user_tables", _contract("user_top")),
    Relation("listen_rows", "build_listen_events", scratch=True),
    Relation("b_listen_events", "build_listen_events", _contract("listen_events")),
    *(Relation(f"old_{n}", f"register_{n}", _contract(n), note="the table before this transform") for n in DATA_TABLES),
    *(
        Relation(
            f"keys_{n}",
            f"scope_{n}",
            (cluster_column(n),),
            note="the cluster-column values whose rows the merge may change (scope.py)",
        )
        for n in DATA_TABLES
        if n != "listens"
    ),
    *(
        Relation(f"touched_{n}", f"scope_{n}", _contract(n), note="old rows of the changed keys (scope.py)")
        for n in DATA_TABLES
        if n != "listens"
    ),
    *(
        Relation(f"staged_{n}", f"stage_{n}", _contract(n), note="the merged rows (of the changed keys) to publish")
        for n in DATA_TABLES
    ),
    *(Relation(f"new_{n}", f"stage_{n}", _contract(n), note="the whole table after the merge") for n in DATA_TABLES),
    *(Relation(f"changed_{n}", f"publish_{n}", scratch=True, note="keys to replace") for n in DATA_TABLES),
    Relation("listens_dropped", "stage_listens", scratch=True, note="events the listens rule drops"),
    Relation(
        "artist_credits",
        "scope_artist_stats",
        ("song_id", "artist_id", "before", "after"),
        note="per moved song and artist, its credits before and after the merge (artist_stats.py)",
    ),
    Relation(
        "artist_elsewhere",
        "stage_artist_stats",
        scratch=True,
        note="moved songs with a position in a playlist the run did not change",
    ),
]
RELATIONS: dict[str, Relation] = {r.name: r for r in _DECLARED}


def _stage_reads(table: str) -> tuple[str, ...]:
    """What `merge.merge_sql(table)` reads: the batch and the old rows of its keys, or a derived table's
    inputs after their merge (history/listens.py reads `staged_listen_events`, always merged whole)."""
    if table == "listens":
        return ("staged_listen_events",)
    if table == "artist_stats":  # the moved artists' rows from the changes, else from the whole tables
        return ("new_playlist_songs", "new_song_artists")
    return (f"b_{table}", f"touched_{table}")


def _scope_reads(table: str) -> tuple[str, ...]:
    """What `scope.scope(table)` reads: the batch's keys and the old rows, or the inputs' changed rows."""
    if table == "artist_stats":  # transform/artist_stats.py `build_credits`
        return (
            *(f"{r}_{i}" for i in ("playlist_songs", "song_artists") for r in ("touched", "staged")),
            "old_song_artists",
            "keys_song_artists",
        )
    emptied = ("e_playlist_songs",) if table == "playlist_songs" else ()
    return (f"b_{table}", f"old_{table}", *emptied)


def _publish_reads(table: str) -> tuple[str, ...]:
    """What publishing reads: the staged rows, and for a keyed table the batch whose keys it replaces
    (publish.py `_changed_keys`; a derived table compares its staged rows with `old_<table>`, which the
    publish registers itself, as the runner does not for a derived table it recomputes)."""
    rule = MERGES[table]
    if table == "listens":  # its changed rows are found from the batch of events (history/listens.py)
        return ("staged_listens", "b_listen_events", "new_listen_events")  # and its twin's rows (publish.py)
    if isinstance(rule, Derived):
        return (f"staged_{table}",)
    emptied = (rule.emptied,) if isinstance(rule, ReplaceChildren) and rule.emptied else ()
    return (f"staged_{table}", f"b_{table}", *emptied)


STEPS: dict[str, Step] = {
    s.name: s
    for s in (
        Step("load_runs"),
        Step("build_batch", reads=("complete", "complete_sources")),
        Step(
            "build_changes",
            reads=("item_rows", "complete", "empty_pages", "old_playlist_songs", "old_playlist_changes"),
        ),
        Step(
            "build_user_tables", reads=("raw_saved_tracks", "raw_recently_played", "raw_top_items", "complete_sources")
        ),
        Step("build_listen_events", reads=("raw_recently_played",)),
        Step("add_listened_songs", reads=("b_listen_events", "b_songs", "old_songs"), changes=("b_songs",)),
        *(Step(f"register_{n}") for n in DATA_TABLES),
        Step(
            "drop_rechecked_playlists",
            reads=("b_playlists", "old_playlists", "rechecked_playlists"),
            changes=("b_playlists",),
        ),
        *(Step(f"scope_{n}", reads=_scope_reads(n)) for n in DATA_TABLES if n != "listens"),
        *(Step(f"stage_{n}", reads=_stage_reads(n)) for n in DATA_TABLES),
        *(Step(f"publish_{n}", reads=_publish_reads(n)) for n in DATA_TABLES),
    )
}


def temp_columns(con: duckdb.DuckDBPyConnection, names: Sequence[str] | None = None) -> dict[str, list[str]]:
    """The connection's temp relations (all, or those of `names` that exist) and their columns in order."""
    # duckdb_columns(), not information_schema.columns (a view over it and more): 0.9 ms a call against 1.6
    # ms, and the transform makes about a hundred.
    sql = "SELECT table_name, column_name FROM duckdb_columns() WHERE database_name = 'temp'"
    params: list[object] = []
    if names is not None:
        sql += " AND list_contains(?, table_name)"
        params.append(list(names))
    found: dict[str, list[str]] = {}
    for table, column in con.execute(sql + " ORDER BY table_name, column_index", params).fetchall():
        found.setdefault(table, []).append(column)
    return found


def require(con: duckdb.DuckDBPyConnection, step: str) -> None:
    """Refuse to run `step` before the relations it reads exist."""
    reads = STEPS[step].reads
    if not reads:
        return
    existing = temp_columns(con, reads)
    for name in reads:
        if name not in existing:
            raise RelationError(
                f"transform step {step} reads {name}, which is not built yet (step {RELATIONS[name].step} builds it)"
            )


def verify(con: duckdb.DuckDBPyConnection, names: Sequence[str]) -> None:
    """Check that each of `names` exists with exactly its declared columns (scratch ones: that it is gone)."""
    for name in names:
        if name not in RELATIONS:
            raise RelationError(f"temp relation {name} is not declared in transform/relations.py")
    if not names:
        return
    existing = temp_columns(con, names)
    for name in names:
        relation = RELATIONS[name]
        if relation.scratch:
            if name in existing:
                raise RelationError(f"scratch relation {name} outlives its step {relation.step}")
            continue
        columns = existing.get(name)
        if columns is None:
            raise RelationError(f"transform step {relation.step} did not build {name}")
        if columns != list(relation.columns):
            missing = [c for c in relation.columns if c not in columns]
            extra = [c for c in columns if c not in relation.columns]
            raise RelationError(
                f"{name} has columns ({', '.join(columns)}), declared ({', '.join(relation.columns)}); "
                f"missing: {', '.join(missing) or '-'}; undeclared: {', '.join(extra) or '-'}"
            )


def built_by(step: str) -> list[str]:
    """The relations `step` builds (scratch ones included), in declaration order."""
    return [r.name for r in _DECLARED if r.step == step]


@contextmanager
def checked_step(con: duckdb.DuckDBPyConnection, step: str) -> Iterator[None]:
    """Run the body as `step`: its inputs checked before, what it built or changed checked after. Its wall
    time is logged at debug level (`bench/small_run.py` collects it: where a small run's time goes)."""
    require(con, step)
    started = time.perf_counter()
    yield
    log.debug("step %s: %.4f s", step, time.perf_counter() - started)
    verify(con, [*built_by(step), *STEPS[step].changes])


@contextmanager
def timed(phase: str) -> Iterator[None]:
    """A part of the transform that builds no temp relation (reading the catalog, the checks, a commit),
    timed like a step."""
    started = time.perf_counter()
    yield
    log.debug("step %s: %.4f s", phase, time.perf_counter() - started)


P = ParamSpec("P")
R = TypeVar("R")


def step(
    name: str,
) -> Callable[
    [Callable[Concatenate[duckdb.DuckDBPyConnection, P], R]], Callable[Concatenate[duckdb.DuckDBPyConnection, P], R]
]:
    """Decorate a function `f(con, ...)` that is the step `name` (see `checked_step`)."""

    def decorate(
        function: Callable[Concatenate[duckdb.DuckDBPyConnection, P], R],
    ) -> Callable[Concatenate[duckdb.DuckDBPyConnection, P], R]:
        @wraps(function)
        def run(con: duckdb.DuckDBPyConnection, /, *args: P.args, **kwargs: P.kwargs) -> R:
            with checked_step(con, name):
                return function(con, *args, **kwargs)

        return run

    return decorate
