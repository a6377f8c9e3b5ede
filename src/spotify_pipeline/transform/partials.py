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


# How each partial table folds into one row per key: the same decomposable aggregate that built it, so
# folding any number of times changes nothing but the row count. Columns in the table's order.
PARTIALS: dict[str, str] = {
    "song_partials": """SELECT song_id, arg_max(song, last_seen_at) AS song, max(last_seen_at) AS last_seen_at,
        min(first_seen_at) AS first_seen_at, min(song_added) AS song_added FROM song_partials GROUP BY song_id""",
    "popularity_partials": """SELECT song_id, observed_date, arg_max(popularity, observed_at) AS popularity,
        max(observed_at) AS observed_at FROM popularity_partials GROUP BY song_id, observed_date""",
    "album_partials": """SELECT album_id, arg_max(album, last_seen_at) AS album, enriched,
        max(last_seen_at) AS last_seen_at, min(first_seen_at) AS first_seen_at
        FROM album_partials GROUP BY album_id, enriched""",
    "artist_partials": """SELECT artist_id, arg_max(artist, last_seen_at) AS artist, enriched,
        max(last_seen_at) AS last_seen_at, min(first_seen_at) AS first_seen_at
        FROM artist_partials GROUP BY artist_id, enriched""",
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
    """Fold track observations (`song_id, obj, fetched_at, added_at`) into per-key partial aggregates:
    the newest observation of each song, album and artist, their first and last sighting, and each song's
    popularity per day. Newest-wins and min/max are decomposable, so the final aggregate over the partials
    equals one aggregate over every observation, however the raw files were batched."""
    con.execute(f"CREATE OR REPLACE TEMP VIEW track_obs AS {observations}")
    accumulate(
        con,
        "song_partials",
        f"""SELECT song_id, arg_max(song, fetched_at) AS song, max(fetched_at) AS last_seen_at,
                   min(fetched_at) AS first_seen_at, min(added_at) AS song_added
            FROM (SELECT song_id, {SONG_FIELDS} AS song, fetched_at, added_at FROM track_obs)
            GROUP BY song_id""",
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
    _add_artist_refs(con, "obj.artists", "track_obs", first)
    add_album_observations(
        con,
        "SELECT obj.album AS album, fetched_at, FALSE AS enriched FROM track_obs WHERE obj.album.id IS NOT NULL",
        first,
    )


def add_album_observations(con: duckdb.DuckDBPyConnection, observations: str, first: bool) -> None:
    """Fold album observations (`album, fetched_at, enriched`) and the artists named on them into partials."""
    con.execute(f"CREATE OR REPLACE TEMP VIEW album_obs AS {observations}")
    accumulate(
        con,
        "album_partials",
        """SELECT album.id AS album_id, arg_max(album, fetched_at) AS album, enriched,
                  max(fetched_at) AS last_seen_at, min(fetched_at) AS first_seen_at
           FROM album_obs WHERE album.id IS NOT NULL GROUP BY album.id, enriched""",
        first,
    )
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


def add_enriched_artists(con: duckdb.DuckDBPyConnection, artists: str) -> None:
    """Add full artist objects (`artist, fetched_at` rows from enrichment or top-artist responses)."""
    con.execute(
        f"""INSERT INTO artist_partials SELECT artist.id, artist, TRUE, fetched_at, fetched_at
            FROM ({artists}) WHERE artist.id IS NOT NULL"""
    )
