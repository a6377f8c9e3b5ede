"""Data-quality checks, declared in one place, run on staged tables before they are published.

Each check is a query returning the number of offending rows (0 = pass) over relations named after the
tables; `run_checks` maps the names to whatever holds the rows (staged temp tables during a transform, the
published tables for `spotify-pipeline check`). An error-severity failure keeps the previous snapshots
current (write-audit-publish); a warning is recorded and reported only.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import duckdb

from ..history.listens import LISTENED_ONLY_SEEN_AT
from ..tables.contract import DATA_TABLES, TABLES

log = logging.getLogger(__name__)
Severity = Literal["error", "warning"]
COLLAPSE_MIN_ROWS = 100  # below this a table is too small for "lost more than half its rows" to mean much
COLLAPSE_RATIO = 0.5
CLOCK_SKEW = "INTERVAL 1 HOUR"  # a date this far past the checking machine's clock is in the future


@dataclass(frozen=True)
class Check:
    name: str
    table: str
    severity: Severity
    sql: str  # {table} placeholders are replaced by relation names; returns one count
    description: str
    # "rows": an error counted over the table's rows, or over groups of rows sharing its cluster column
    # (tables/catalog.py), so a run that changed some keys' rows needs only those rows checked: the others
    # passed when they were published. "table": counted over the whole table (a warning, whose offending
    # rows may have been published, or a count across keys). References have their own rule (`Reference`).
    scope: Literal["rows", "table"] = "table"
    references: tuple[Reference, ...] = ()
    # A key check's columns: counted over a run's changed rows, a staged row outside them (`Changes.stray`)
    # that repeats the key of a row the merge kept (`Changes.unchanged`) is a duplicate too.
    unique: tuple[str, ...] = ()


@dataclass(frozen=True)
class Reference:
    """`child.column` must be a `parent.parent_column` (the parent's key) where `when` holds."""

    child: str
    column: str
    parent: str
    parent_column: str
    when: str = "true"


@dataclass(frozen=True)
class Changes:
    """A table a run merged by its changed keys only (transform/scope.py): `delta`, the merged rows of those
    keys; `fresh`, those of them the merge may have changed (a keyed merge passes the others through);
    `kept`, the old rows outside `fresh`; `gone`, the keys left with no row (column `k`); `stray`, the staged
    rows outside the keys the merge replaced (none, unless something else wrote them) and `unchanged`, the
    old rows the table keeps beside `delta`: the one place a duplicate of a key can hide from `delta`.
    Relation names or subqueries."""

    delta: str
    fresh: str
    kept: str
    gone: str
    stray: str = ""
    unchanged: str = ""


def _primary_keys() -> list[Check]:
    checks = []
    for name in DATA_TABLES:
        key = TABLES[name].key
        cols = ", ".join(key)
        nulls = " OR ".join(f"{k} IS NULL" for k in key)
        checks.append(
            Check(
                f"{name}.key_unique_not_null",
                name,
                "error",
                f"SELECT (SELECT count(*) FROM {{{name}}} WHERE {nulls})"
                f" + (SELECT count(*) FROM (SELECT {cols} FROM {{{name}}} GROUP BY ALL HAVING count(*) > 1))",
                f"({cols}) is unique and never null",
                scope="rows",
                unique=key,
            )
        )
    return checks


def _foreign_key(child: str, column: str, parent: str, parent_column: str | None = None) -> Check:
    parent_column = parent_column or column
    return Check(
        f"{child}.{column}_resolves",
        child,
        "error",
        "",
        f"every {child}.{column} is a {parent}.{parent_column}",
        references=(Reference(child, column, parent, parent_column),),
    )


def references_sql(references: tuple[Reference, ...], changed_rows: bool, keys_removed: bool) -> str:
    """Rows of the child whose reference does not resolve, counted where it can change: the child's rows the
    merge may have changed (`{f_child}`) against the parent after the merge, plus, if a merge removed parent
    keys (`keys_removed`; none unless a merge drops keys), the other child rows (`{k_child}`) that name one
    (`{g_parent}`). With `changed_rows` (a run's changed rows only) the parent is read only for the keys
    they name, pruned like a merge's old rows; checking a whole table, `{f_child}` is the table and the
    others are empty: the plain anti-join."""
    child = references[0].child
    lookup = [
        f"(SELECT {r.parent_column} AS k FROM {{{r.parent}}} WHERE {r.parent_column} IN "
        f"(SELECT {r.column} FROM {{f_{child}}}))"
        if changed_rows
        else f"(SELECT {r.parent_column} AS k FROM {{{r.parent}}})"
        for r in references
    ]
    found = ", ".join(f"p{i} AS {sql}" for i, sql in enumerate(lookup))
    missing = " OR ".join(
        f"(({r.when}) AND c.{r.column} IS NOT NULL AND NOT EXISTS (SELECT 1 FROM p{i} WHERE p{i}.k = c.{r.column}))"
        for i, r in enumerate(references)
    )
    sql = f"WITH {found} SELECT (SELECT count(*) FROM {{f_{child}}} c WHERE {missing})"
    if keys_removed:
        removed = " OR ".join(f"(({r.when}) AND c.{r.column} IN (SELECT k FROM {{g_{r.parent}}}))" for r in references)
        sql += f" + (SELECT count(*) FROM {{k_{child}}} c WHERE {removed})"
    return sql


def resolved_in_delta_sql(references: tuple[Reference, ...]) -> str:
    """Rows of the child's changed rows (`{f_child}`) whose reference is not among the parent's changed rows
    (`{d_parent}`, a subset of the parent after the merge). 0 - the usual case: a run's songs, albums and
    artists come with the positions naming them - proves the reference check passes on those rows without
    reading the parent's untouched rows (whose ids are hashes, spread over every file)."""
    child = references[0].child
    missing = " OR ".join(
        f"(({r.when}) AND c.{r.column} IS NOT NULL AND NOT EXISTS "
        f"(SELECT 1 FROM {{d_{r.parent}}} p WHERE p.{r.parent_column} = c.{r.column}))"
        for r in references
    )
    return f"SELECT count(*) FROM {{f_{child}}} c WHERE {missing}"


def _popularity(table: str) -> Check:
    return Check(
        f"{table}.popularity_range",
        table,
        "error",
        f"SELECT count(*) FROM {{{table}}} WHERE popularity IS NOT NULL AND popularity NOT BETWEEN 0 AND 100",
        "popularity is within 0..100 or null",
        scope="rows",
    )


CHECKS: list[Check] = [
    *_primary_keys(),
    _foreign_key("songs", "album_id", "albums"),
    _foreign_key("songs", "artist_id", "artists"),
    _foreign_key("song_artists", "song_id", "songs"),
    _foreign_key("song_artists", "artist_id", "artists"),
    _foreign_key("album_artists", "album_id", "albums"),
    _foreign_key("album_artists", "artist_id", "artists"),
    _foreign_key("playlist_songs", "song_id", "songs"),
    _foreign_key("playlist_songs", "playlist_id", "playlists"),
    _foreign_key("song_popularity", "song_id", "songs"),
    _foreign_key("playlist_changes", "playlist_id", "playlists"),
    _foreign_key("saved_songs", "song_id", "songs"),
    _foreign_key("plays", "song_id", "songs"),
    _foreign_key("artist_stats", "artist_id", "artists"),
    Check(
        "user_top.item_resolves",
        "user_top",
        "error",
        "",
        "every top track is a song and every top artist an artist",
        references=(
            Reference("user_top", "item_id", "songs", "song_id", "c.item_type = 'track'"),
            Reference("user_top", "item_id", "artists", "artist_id", "c.item_type = 'artist'"),
        ),
    ),
    *(_popularity(t) for t in ("songs", "artists", "albums", "song_popularity")),
    Check(
        # A warning: a missing duration is missing data, not a broken lake (and a song the API never sends
        # again would otherwise stop every transform); merges keep a song's last known duration.
        "songs.duration_positive",
        "songs",
        "warning",
        # Songs known only from listening history (not yet looked up on /tracks) have no duration yet.
        f"SELECT count(*) FROM {{songs}} WHERE (duration_ms IS NULL OR duration_ms <= 0)"
        f" AND last_seen_at > {LISTENED_ONLY_SEEN_AT}",
        "every track lasts more than 0 ms",
    ),
    *(
        Check(
            f"{t}.values_valid",
            t,
            "error",
            f"SELECT count(*) FROM {{{t}}} WHERE ms_played < 0 OR ended_at IS NULL OR user_id IS NULL"
            " OR item_type NOT IN ('track', 'episode', 'audiobook', 'unknown') OR source NOT IN ('export', 'api')"
            " OR (song_id IS NOT NULL AND item_type <> 'track')",
            "ms_played >= 0; user, end time, kind and source set; song_id only for tracks",
            scope="rows",
        )
        for t in ("listen_events", "listens")
    ),
    Check(
        "albums.release_date_matches_precision",
        "albums",
        "error",
        """SELECT count(*) FROM {albums} WHERE release_date IS NOT NULL AND NOT (
                 (release_date_precision = 'year' AND strftime(release_date, '%Y') = release_date_raw)
              OR (release_date_precision = 'month' AND strftime(release_date, '%Y-%m') = release_date_raw)
              OR (release_date_precision = 'day' AND strftime(release_date, '%Y-%m-%d') = release_date_raw))""",
        "release_date is release_date_raw read at its precision",
        scope="rows",
    ),
    Check(
        "playlist_songs.positions_contiguous",
        "playlist_songs",
        "error",
        """SELECT count(*) FROM (SELECT playlist_id FROM {playlist_songs} GROUP BY playlist_id
             HAVING min(position) <> 0 OR max(position) <> count(*) - 1)""",
        "each playlist's positions are 0..n-1",
        scope="rows",
    ),
    Check(
        # Positions lost on the way (a raw line gone, a page dropped) would otherwise publish a shorter
        # playlist that still looks contiguous. Compared only where the positions come from the snapshot the
        # playlist row describes (a newer header whose items were not extracted has another total), and never
        # for metadata-only playlists (no items extracted, so no positions to count).
        # A warning: the error-level guarantee is upstream. The extractor marks a playlist complete only when
        # its pages agree on `total` and hold that many items, and the transform sets aside an extraction whose
        # positions are not 0..n-1 for the n items read (transform/positions.py). So this fires only on a header whose
        # own `total` is odd, which must not stop every other playlist from being published.
        "playlist_songs.positions_match_total",
        "playlist_songs",
        "warning",
        # Counted over every position (a whole-table warning), so the positions are counted first and their
        # snapshot ids read only for the playlists whose count is off (usually none): the smallest snapshot id
        # of all 10M positions was 0.13 of the check's 0.18 CPU s at 10M items (docs/BENCHMARKS.md).
        """WITH off AS (
               SELECT p.playlist_id, p.snapshot_id, s.playlist_id IS NULL AS no_positions FROM {playlists} p
               LEFT JOIN (SELECT playlist_id, count(*) AS positions FROM {playlist_songs} GROUP BY playlist_id) s
                   ON s.playlist_id = p.playlist_id
               WHERE p.items_extracted_at IS NOT NULL AND p.total_items IS NOT NULL
                 AND coalesce(s.positions, 0) <> p.total_items
           )
           SELECT count(*) FROM off o
           LEFT JOIN (SELECT playlist_id, min(snapshot_id) AS snapshot_id FROM {playlist_songs}
                      WHERE playlist_id IN (SELECT playlist_id FROM off) GROUP BY playlist_id) s
               ON s.playlist_id = o.playlist_id
           WHERE o.no_positions OR s.snapshot_id IS NOT DISTINCT FROM o.snapshot_id""",
        "each fully extracted playlist has as many positions as its total_items",
    ),
    Check(
        "playlist_songs.song_only_for_tracks",
        "playlist_songs",
        "error",
        "SELECT count(*) FROM {playlist_songs} WHERE (item_type = 'track') <> (song_id IS NOT NULL)",
        "song_id is set exactly for items of type track",
        scope="rows",
    ),
    # Dates that cannot be facts. Normalize stores Spotify's epoch placeholder as NULL and the simulator
    # never dates the future, so these warn only if such dates arrive some other way.
    Check(
        "playlist_songs.added_at_not_in_future",
        "playlist_songs",
        "warning",
        f"SELECT count(*) FROM {{playlist_songs}} WHERE added_at > now() + {CLOCK_SKEW}",
        "no item was added in the future (beyond an hour of clock skew)",
    ),
    Check(
        "playlist_songs.added_at_not_epoch",
        "playlist_songs",
        "warning",
        "SELECT count(*) FROM {playlist_songs} WHERE added_at = TIMESTAMPTZ '1970-01-01 00:00:00+00'",
        "no added_at is 1970-01-01, Spotify's placeholder for an unknown date (stored as null)",
    ),
]


@dataclass(frozen=True)
class CheckResult:
    check: Check
    failing_rows: int

    @property
    def passed(self) -> bool:
        return self.failing_rows == 0


def run_checks(
    con: duckdb.DuckDBPyConnection,
    relations: Mapping[str, str],
    previous_counts: Mapping[str, int] | None = None,
    *,
    changes: Mapping[str, Changes] | None = None,
    rows: Mapping[str, int] | None = None,
    same_rows: Mapping[str, str] | None = None,
) -> list[CheckResult]:
    """Run every check on the tables `relations` names; `previous_counts` (rows per table before this
    change) enables the collapse check. `changes`: the tables a run merged by their changed keys only,
    whose "rows" checks and references are counted on those keys' rows (`Check.scope`); `rows`: each
    table's rows, when known without counting them. `same_rows`: a table -> another whose relation holds
    the very same rows (`listens` staged as a view of every `listen_events` row: history/listens.py
    `listens_are_events`), both checked whole: a check of the first whose query is the same as one of the
    other's takes its count instead of reading the rows again (`_twin_count`)."""
    changes = changes or {}
    whole = {name: relations[name] for name in DATA_TABLES}
    fresh = {f"f_{n}": changes[n].fresh if n in changes else whole[n] for n in DATA_TABLES}
    kept = {
        f"k_{n}": changes[n].kept if n in changes else f"(SELECT * FROM {whole[n]} WHERE false)" for n in DATA_TABLES
    }
    gone = {
        f"g_{n}": changes[n].gone if n in changes else f"(SELECT {TABLES[n].key[0]} AS k FROM {whole[n]} WHERE false)"
        for n in DATA_TABLES
    }
    delta = {f"d_{n}": c.delta for n, c in changes.items()}
    placeholders = {**relations, **fresh, **kept, **gone, **delta}
    # Parent keys a merge left without a row: none, unless a merge drops keys; then the untouched child rows
    # are read for them too.
    removed = {n for n, c in changes.items() if con.execute(f"SELECT count(*) FROM {c.gone}").fetchall()[0][0]}
    # A table with no rows after the merge has no offending row: its row checks and references pass unread
    # (a lake without listening history has five; each reference check read its parent's keys whole).
    empty = {n for n in DATA_TABLES if rows is not None and rows.get(n) == 0}
    results = []
    counted: dict[str, int] = {}
    for check in CHECKS:
        started = time.perf_counter()
        if check.table in empty and (check.references or check.scope == "rows"):
            results.append(CheckResult(check, 0))
            continue
        twin = _twin_count(check, counted, same_rows or {}, changes)
        if twin is not None:
            results.append(CheckResult(check, twin))
            counted[check.name] = twin
            continue
        if check.references:
            parents_lost = any(r.parent in removed for r in check.references)
            if (
                check.table in changes
                and not parents_lost
                and all(r.parent in changes for r in check.references)
                and not con.execute(resolved_in_delta_sql(check.references).format(**placeholders)).fetchall()[0][0]
            ):
                results.append(CheckResult(check, 0))
                log.debug("step %s: %.4f s", f"check.{check.name}", time.perf_counter() - started)
                continue
            sql = references_sql(check.references, check.table in changes, parents_lost).format(**placeholders)
        elif check.scope == "rows" and check.table in changes:
            sql = check.sql.format(**{**relations, check.table: changes[check.table].delta})
        else:
            sql = check.sql.format(**relations)
        failing = int(con.execute(sql).fetchall()[0][0])
        if check.unique and check.table in changes:
            failing += _strays_repeating_kept(con, check.unique, changes[check.table])
        results.append(CheckResult(check, failing))
        counted[check.name] = failing
        log.debug("step %s: %.4f s", f"check.{check.name}", time.perf_counter() - started)
    for table, before in (previous_counts or {}).items():
        if table not in DATA_TABLES or before < COLLAPSE_MIN_ROWS:
            continue
        if rows is not None and table in rows:
            after = rows[table]
        else:
            after = int(con.execute(f"SELECT count(*) FROM {relations[table]}").fetchall()[0][0])
        check = Check(
            f"{table}.row_count_not_collapsing",
            table,
            "error",
            "",
            f"{table} keeps at least {COLLAPSE_RATIO:.0%} of its {before} rows",
        )
        results.append(CheckResult(check, before - after if after < before * COLLAPSE_RATIO else 0))
    return results


def _twin_count(
    check: Check, counted: Mapping[str, int], same_rows: Mapping[str, str], changes: Mapping[str, Changes]
) -> int | None:
    """The count of the check `check` repeats on a table holding the same rows (`same_rows`), when that one was
    counted already, both tables are checked whole and its query is this one's with the table renamed."""
    twin = same_rows.get(check.table)
    if twin is None or check.table in changes or twin in changes or check.references:
        return None
    name, renamed = twin + check.name.removeprefix(check.table), check.sql.replace(f"{{{check.table}}}", f"{{{twin}}}")
    shape = (twin, renamed, check.scope, check.unique)
    same = [c for c in CHECKS if c.name == name and (c.table, c.sql, c.scope, c.unique) == shape]
    return counted[name] if len(same) == 1 and name in counted else None


def _strays_repeating_kept(con: duckdb.DuckDBPyConnection, key: tuple[str, ...], change: Changes) -> int:
    """Staged rows outside a run's changed keys that repeat the key of a row the table keeps: counted only
    when there is such a staged row (a lookup in the kept rows reads the table's key columns)."""
    if not change.stray or not con.execute(f"SELECT EXISTS (SELECT 1 FROM {change.stray})").fetchall()[0][0]:
        return 0
    on = " AND ".join(f"u.{k} = s.{k}" for k in key)
    sql = f"SELECT count(*) FROM {change.stray} s WHERE EXISTS (SELECT 1 FROM {change.unchanged} u WHERE {on})"
    return int(con.execute(sql).fetchall()[0][0])


def results_rows(results: list[CheckResult], run_id: str, at: dt.datetime) -> list[dict[str, object]]:
    return [
        {
            "run_id": run_id,
            "check_name": r.check.name,
            "table_name": r.check.table,
            "severity": r.check.severity,
            "passed": r.passed,
            "failing_rows": r.failing_rows,
            "checked_at": at,
            "description": r.check.description,
        }
        for r in results
    ]


def failed_errors(results: list[CheckResult]) -> list[CheckResult]:
    return [r for r in results if not r.passed and r.check.severity == "error"]
