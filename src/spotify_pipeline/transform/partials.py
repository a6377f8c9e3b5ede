"""Per-key partial aggregates of the nested objects (songs, albums, artists, popularity) seen in a batch.

Each batch of raw files folds its observations into `*_partials` tables with decomposable aggregates
(newest wins, first and last sighting), so the final aggregate over the partials equals one aggregate over
every observation however the raw files were batched, and memory follows the number of distinct keys.
"""

from __future__ import annotations

from collections.abc import Sequence

import duckdb

from .raw import ARTIST, sql_type


def accumulate(con: duckdb.DuckDBPyConnection, table: str, select: str, first: bool) -> None:
    """Create `table` from the first batch's rows, append the later batches' rows."""
    if first:
        con.execute(f"CREATE OR REPLACE TEMP TABLE {table} AS {select}")
    else:
        con.execute(f"INSERT INTO {table} {select}")


# What a song row needs of a track object (the album and the artists' names go to their own partials).
SONG_FIELDS = """{'name': obj.name, 'duration_ms': obj.duration_ms, 'explicit': obj.explicit,
    'popularity': obj.popularity, 'isrc': obj.external_ids.isrc, 'disc_number': obj.disc_number,
    'track_number': obj.track_number, 'album_id': obj.album.id,
    'artist_ids': list_transform(obj.artists, lambda a: a.id), 'uri': obj.uri, 'url': obj.external_urls.spotify}"""


def newest_row(source: str, row_id: str, keys: str, at: str, aggregates: str) -> str:
    """The aggregate subquery `g` of a newest-wins fold: per group of `keys`, the `row_id` of its newest row
    by `at` (`newest`) beside the other `aggregates`; the caller joins `source` back on `row_id` to take the
    newest row's wide values. `arg_max(struct, at)` compares and copies the whole struct at every row, which
    made the song, album and artist folds 3-4x slower than this integer pick and one join (measured on the
    100k positions of one batch: songs 0.116 -> 0.078 s, albums 0.061 -> 0.033 s). Ties pick any newest row,
    as `arg_max` does; a group whose `at` is NULL throughout picks none (the value NULL: join with LEFT)."""
    return f"(SELECT {keys}, arg_max({row_id}, {at}) AS newest, {aggregates} FROM {source} GROUP BY {keys}) g"


# How each partial table folds into one row per key: the same decomposable aggregate that built it, so
# folding any number of times changes nothing but the row count. Columns in the table's order. The wide
# value is taken from the newest row by its rowid (`newest_row`).
PARTIALS: dict[str, str] = {
    "song_partials": f"""SELECT g.song_id, s.song, g.last_seen_at, g.first_seen_at, g.song_added
        FROM {
        newest_row(
            "song_partials",
            "rowid",
            "song_id",
            "last_seen_at",
            "max(last_seen_at) AS last_seen_at, min(first_seen_at) AS first_seen_at, min(song_added) AS song_added",
        )
    }
        LEFT JOIN song_partials s ON s.rowid = g.newest""",
    "popularity_partials": """SELECT song_id, observed_date, arg_max(popularity, observed_at) AS popularity,
        max(observed_at) AS observed_at FROM popularity_partials GROUP BY song_id, observed_date""",
    "album_partials": f"""SELECT g.album_id, s.album, g.enriched, g.last_seen_at, g.first_seen_at
        FROM {
        newest_row(
            "album_partials",
            "rowid",
            "album_id, enriched",
            "last_seen_at",
            "max(last_seen_at) AS last_seen_at, min(first_seen_at) AS first_seen_at",
        )
    }
        LEFT JOIN album_partials s ON s.rowid = g.newest""",
    "artist_partials": f"""SELECT g.artist_id, s.artist, g.enriched, g.last_seen_at, g.first_seen_at
        FROM {
        newest_row(
            "artist_partials",
            "rowid",
            "artist_id, enriched",
            "last_seen_at",
            "max(last_seen_at) AS last_seen_at, min(first_seen_at) AS first_seen_at",
        )
    }
        LEFT JOIN artist_partials s ON s.rowid = g.newest""",
}
COMPACT_MIN_ROWS = 1_000_000


class PartialCompactor:
    """Folds a partial table into one row per key whenever it has doubled since its last fold (and holds at
    least COMPACT_MIN_ROWS rows). Each batch appends a row for every key it saw, so without folding the
    partials grow with the number of batches (~700 batches of 64 MiB at 10M items: DuckDB's spill peaked at
    25 GB, 14 GB with folding; docs/BENCHMARKS.md); with it they stay within twice the number of distinct
    keys, at a cost that doubling keeps proportional to the rows appended."""

    def __init__(
        self, con: duckdb.DuckDBPyConnection, tables: Sequence[str] = tuple(PARTIALS), min_rows: int | None = None
    ) -> None:
        self.con = con
        self.min_rows = COMPACT_MIN_ROWS if min_rows is None else min_rows
        self.threshold = dict.fromkeys(tables, self.min_rows)

    def __call__(self) -> None:
        for table, threshold in self.threshold.items():
            rows = self.con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0]
            if rows < threshold:
                continue
            self.con.execute(f"CREATE OR REPLACE TEMP TABLE {table}_folded AS {PARTIALS[table]}")
            self.con.execute(f"DROP TABLE {table}")
            self.con.execute(f"ALTER TABLE {table}_folded RENAME TO {table}")
            folded = self.con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0]
            self.threshold[table] = max(self.min_rows, 2 * folded)


def add_track_observations(con: duckdb.DuckDBPyConnection, observations: str, first: bool) -> None:
    """Fold track observations (`obs_id, song_id, obj, fetched_at, added_at`) into per-key partial aggregates:
    the newest observation of each song, album and artist, their first and last sighting, and each song's
    popularity per day. Newest-wins and min/max are decomposable, so the final aggregate over the partials
    equals one aggregate over every observation, however the raw files were batched. `obs_id` names each
    observation uniquely and stably (a table's rowid: `observations` is read twice, `newest_row`)."""
    con.execute(f"CREATE OR REPLACE TEMP VIEW track_obs AS {observations}")
    accumulate(
        con,
        "song_partials",
        f"""SELECT g.song_id, CASE WHEN s.obs_id IS NOT NULL THEN {SONG_FIELDS} END AS song,
                   g.last_seen_at, g.first_seen_at, g.song_added
            FROM {
            newest_row(
                "track_obs",
                "obs_id",
                "song_id",
                "fetched_at",
                "max(fetched_at) AS last_seen_at, min(fetched_at) AS first_seen_at, min(added_at) AS song_added",
            )
        }
            LEFT JOIN track_obs s ON s.obs_id = g.newest""",
        first,
    )
    accumulate(
        con,
        "popularity_partials",
        """SELECT song_id, fetched_at::DATE AS observed_date, arg_max(obj.popularity, fetched_at) AS popularity,
                  max(fetched_at) AS observed_at
           FROM track_obs WHERE obj.popularity IS NOT NULL GROUP BY ALL""",
        first,
    )
    add_streaks(con, "song_streaks", "SELECT song_id, obj, fetched_at FROM track_obs", "fetched_at", first)
    _add_artist_refs(con, "obj.artists", "track_obs", first)
    add_album_observations(
        con,
        "SELECT obs_id, obj.album AS album, fetched_at, FALSE AS enriched FROM track_obs"
        " WHERE obj.album.id IS NOT NULL",
        first,
    )


def add_album_observations(con: duckdb.DuckDBPyConnection, observations: str, first: bool) -> None:
    """Fold album observations (`obs_id, album, fetched_at, enriched`; `obs_id` as for tracks) and the
    artists named on them into partials."""
    con.execute(f"CREATE OR REPLACE TEMP VIEW album_obs AS {observations}")
    accumulate(
        con,
        "album_partials",
        f"""SELECT g.album_id, s.album, g.enriched, g.last_seen_at, g.first_seen_at
           FROM {
            newest_row(
                "(SELECT *, album.id AS album_id FROM album_obs WHERE album.id IS NOT NULL)",
                "obs_id",
                "album_id, enriched",
                "fetched_at",
                "max(fetched_at) AS last_seen_at, min(fetched_at) AS first_seen_at",
            )
        }
           LEFT JOIN album_obs s ON s.obs_id = g.newest""",
        first,
    )
    albums_seen = "SELECT album.id AS album_id, album, fetched_at FROM album_obs"
    add_streaks(con, "album_streaks", albums_seen, "fetched_at", first)
    _add_artist_refs(con, "album.artists", "album_obs", first=False)


def _add_artist_refs(con: duckdb.DuckDBPyConnection, refs: str, observations: str, first: bool) -> None:
    """Fold the simplified artists named on tracks or albums (the list column `refs` of `observations`)
    into the artist partials."""
    accumulate(
        con,
        "artist_partials",
        f"""SELECT artist.id AS artist_id, arg_max(artist, fetched_at) AS artist, FALSE AS enriched,
                   max(fetched_at) AS last_seen_at, min(fetched_at) AS first_seen_at
            FROM (SELECT a::{sql_type(ARTIST)} AS artist, fetched_at
                  FROM (SELECT unnest({refs}) AS a, fetched_at FROM {observations}))
            WHERE artist.id IS NOT NULL GROUP BY artist.id""",
        first,
    )
    refs_seen = (
        f"SELECT a::{sql_type(ARTIST)} AS artist, fetched_at"
        f" FROM (SELECT unnest({refs}) AS a, fetched_at FROM {observations})"
    )
    add_streaks(con, "artist_streaks", f"SELECT artist.id AS artist_id, * FROM ({refs_seen})", "fetched_at", first)


def add_enriched_artists(con: duckdb.DuckDBPyConnection, artists: str) -> None:
    """Add full artist objects (`artist, fetched_at` rows from enrichment or top-artist responses)."""
    con.execute(
        f"""INSERT INTO artist_partials SELECT artist.id, artist, TRUE, fetched_at, fetched_at
            FROM ({artists}) WHERE artist.id IS NOT NULL"""
    )
    add_streaks(con, "artist_streaks", f"SELECT artist.id AS artist_id, * FROM ({artists})", "fetched_at", False)


# ---- Streaks: when each song, album and artist last changed (issue #20, churn) --------------------------------
# `last_seen_at` of a song, album or artist is when the pipeline last found something new about it: the first
# observation of the values its row holds now, after the last observation of other values (docs/SCHEMA.md).
# Moving it at every sighting made each run rewrite every song of a changed playlist, their albums and a third
# of the artists. Observations fold into streaks, (key, h, since, until): `h` hashes the fields a row takes
# from an observation as they are (not the sticky ones a newer observation lacking them leaves alone, not the
# times), and consecutive observations with the same `h` are one streak. Streaks fold like the other partials
# (consecutive equal ones join), so the last streak's `since` is the same however the observations were
# batched, as long as two batches do not report different values at interleaved times.
STREAK_FIELDS: dict[str, tuple[str, str]] = {  # streak table -> (key column, the hashed fields of an observation)
    "song_streaks": (
        "song_id",
        "[obj.name, obj.explicit::VARCHAR, obj.disc_number::VARCHAR, obj.track_number::VARCHAR, obj.album.id,"
        " obj.artists[1].id, obj.uri, obj.external_urls.spotify]",
    ),
    "album_streaks": (
        "album_id",
        "[album.name, album.album_type, album.release_date, album.release_date_precision,"
        " album.total_tracks::VARCHAR, album.uri, album.external_urls.spotify, album.images[1].url]",
    ),
    "artist_streaks": ("artist_id", "[artist.name, artist.uri, artist.external_urls.spotify]"),
}


def streaks_sql(table: str, source: str) -> str:
    """Fold `source` (`<key>, h, since, until` rows) into streaks: rows of one key ordered by time, a new
    streak wherever `h` differs from the row before. Folding folded streaks again changes nothing."""
    key = STREAK_FIELDS[table][0]
    order = f"PARTITION BY {key} ORDER BY since, until, h"
    return f"""SELECT {key}, h, min(since) AS since, max(until) AS until
        FROM (SELECT *, sum(fresh) OVER ({order} ROWS UNBOUNDED PRECEDING) AS streak
              FROM (SELECT *, (lag(h) OVER ({order}) IS DISTINCT FROM h)::INTEGER AS fresh FROM {source}))
        GROUP BY {key}, h, streak"""


def add_streaks(con: duckdb.DuckDBPyConnection, table: str, observations: str, time: str, first: bool) -> None:
    """Fold `observations` (a relation with the fields of `STREAK_FIELDS[table]` and the time column `time`)
    into `table`'s streaks."""
    key, fields = STREAK_FIELDS[table]
    seen = (
        f"(SELECT {key}, hash({fields}) AS h, {time} AS since, {time} AS until FROM ({observations})"
        f" WHERE {key} IS NOT NULL GROUP BY ALL)"
    )
    accumulate(con, table, streaks_sql(table, seen), first)


PARTIALS.update({table: streaks_sql(table, table) for table in STREAK_FIELDS})
