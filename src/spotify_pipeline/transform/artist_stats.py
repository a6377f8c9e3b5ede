"""`artist_stats` of a small run from what changed: the moved artists' stored rows plus what the changed
playlists and credits add and remove (issue #20).

Recomputing a moved artist's statistics joins `song_artists` to `playlist_songs` by song, and
`playlist_songs` is sorted by playlist, so every song's positions are in every file: at 10M items the step
read the song column of all 10M positions and every credit (~0.9 s of a ~3.9 s run; docs/BENCHMARKS.md). A
run replaces whole playlists (`ReplaceChildren`), so with the credits of the positions' songs unchanged:

    appearances  = stored + credited positions in the changed playlists' new rows - in their old rows
    playlists    = stored + changed playlists holding the artist now - those that held it before
    songs        = stored + songs of the artist that now have a position and had none - the reverse

Only `songs` needs the rest of the table: whether a song added to (or removed from) the changed playlists
has a position in another playlist. That is looked up for those few songs (`elsewhere`): one column of
`playlist_songs`, no join. A song whose credits changed moves its artists' counts in every playlist holding
it; if one of those is not a changed playlist, the moved artists are recomputed from the whole tables as
before (`changed_rows_sql`). The same happens if the stored rows and the changes disagree (a count below
zero): the result is always a full recompute's.

Relations (transform/relations.py): `artist_credits` (scope_artist_stats) holds, per moved song and
artist, the credits before and after the merge; the scratch `artist_elsewhere` lives inside the stage.
"""

from __future__ import annotations

import logging
from typing import Any

import duckdb

log = logging.getLogger(__name__)

# The whole recompute (`Derived.sql`, and with a WHERE on `sa` the moved artists' rows): per artist, its
# credited positions (an artist credited twice on a song counts each position twice), the playlists and the
# songs they are in. Plain GROUP BYs and joins only, which DuckDB spills past its memory cap: the join of every
# position to every credit with two `count(DISTINCT ...)` did not (at 10M items under a 2 GB cap, an
# OutOfMemoryException: docs/BENCHMARKS.md). `appearances` and `songs` come from positions per song (~3M rows
# at 10M items, not 10M) times credits per (song, artist); `playlists` from the distinct (artist, playlist)
# pairs. A position with no song, or a song with no credit, counts for no artist; a NULL playlist for no
# playlist (as `count(DISTINCT ...)` skipped it).
ARTIST_STATS_SQL = """
    WITH by_song AS (
        SELECT sa.artist_id, sum(ps.positions * sa.credits)::BIGINT AS appearances, count(*) AS songs
        FROM (SELECT song_id, count(*) AS positions FROM new_playlist_songs WHERE song_id IS NOT NULL
              GROUP BY song_id) ps
        JOIN (SELECT sa.song_id, sa.artist_id, count(*) AS credits FROM new_song_artists sa {where}
              GROUP BY sa.song_id, sa.artist_id) sa ON sa.song_id = ps.song_id
        GROUP BY sa.artist_id
    ),
    by_playlist AS (
        SELECT artist_id, count(playlist_id) AS playlists
        FROM (SELECT sa.artist_id, ps.playlist_id
              FROM new_playlist_songs ps JOIN new_song_artists sa ON sa.song_id = ps.song_id {where}
              GROUP BY sa.artist_id, ps.playlist_id)
        GROUP BY artist_id
    )
    SELECT s.artist_id, s.appearances, coalesce(p.playlists, 0) AS playlists, s.songs
    FROM by_song s LEFT JOIN by_playlist p ON p.artist_id IS NOT DISTINCT FROM s.artist_id"""
CHANGED_ROWS_SQL = ARTIST_STATS_SQL.format(where="WHERE sa.artist_id IN (SELECT artist_id FROM keys_artist_stats)")
# Credit rows per pass of the whole recompute (`stage_whole`): each pass joins every position to the credits
# of one slice of the artists, so the join's hash table and the (artist, playlist) pairs it groups are that
# slice's. At 10M items (4.4M credits) that is 5 passes; a lake under 1M credits is recomputed in one.
WHOLE_PASS_CREDITS = 1_000_000


def stage_whole(con: duckdb.DuckDBPyConnection) -> None:
    """`staged_artist_stats` recomputed whole (`merge.stage_derived`): `ARTIST_STATS_SQL` in passes over
    slices of the artists by hash (an artist's rows depend on its own credits only), so the memory a pass
    holds is a slice's, not the lake's. One pass joined 10M positions to 4.4M credits and grouped ~9M
    (artist, playlist) pairs: 3.1 GB with no cap, and out of memory under the Lambda's 2 GB cap beside the
    run's other tables (docs/BENCHMARKS.md)."""
    credits = con.execute("SELECT count(*) FROM new_song_artists").fetchall()[0][0]
    passes = max(1, -(-credits // WHOLE_PASS_CREDITS))
    for k in range(passes):
        where = f"WHERE hash(sa.artist_id) % {passes} = {k}" if passes > 1 else ""  # hash(NULL) is a value too
        into = "INSERT INTO staged_artist_stats" if k else "CREATE TEMP TABLE staged_artist_stats AS"
        con.execute(f"{into} {ARTIST_STATS_SQL.format(where=where)}")


# The moved artists: credited, before or after, on a song of the changed positions and credits.
CHANGED_SQL = "SELECT artist_id FROM artist_credits"

# The songs whose positions or credits the run changed.
_MOVED = """SELECT song_id FROM touched_playlist_songs UNION SELECT song_id FROM staged_playlist_songs
            UNION SELECT song_id FROM touched_song_artists UNION SELECT song_id FROM staged_song_artists"""


def _named(con: duckdb.DuckDBPyConnection, sql: str, column: str) -> tuple[str, list[Any]]:
    """` AND x.<column> IN (?, ...)` with the values `sql` selects, so the Parquet scan checks them against
    each row group's statistics (scope.py `PRUNING_VALUES`); nothing past that many (then only the
    semi-join filters, reading every row group)."""
    from .scope import PRUNING_VALUES  # scope.py imports merge.py, which imports this module

    found = con.execute(f"SELECT DISTINCT {column} FROM ({sql}) WHERE {column} IS NOT NULL LIMIT {PRUNING_VALUES + 1}")
    values = [v for (v,) in found.fetchall()]
    if not 0 < len(values) <= PRUNING_VALUES:
        return "", []
    return f" AND x.{column} IN ({', '.join('?' * len(values))})", values


def old_credits_query(con: duckdb.DuckDBPyConnection) -> tuple[str, list[Any]]:
    """The stored credits of the moved songs the batch does not credit again (songs removed from a changed
    playlist), read from `song_artists` by constants; the batch's songs' are in `touched_song_artists`."""
    others = f"""SELECT song_id FROM ({_MOVED}) WHERE song_id IS NOT NULL
                 AND song_id NOT IN (SELECT song_id FROM keys_song_artists)"""
    named, values = _named(con, others, "song_id")
    sql = f"SELECT x.song_id, x.artist_id FROM old_song_artists x WHERE x.song_id IN ({others}){named}"
    return sql, values


def build_credits(con: duckdb.DuckDBPyConnection, nothing: bool = False) -> None:
    """`artist_credits`: per moved song and artist, how many times the artist is credited on it before the
    merge and after (`song_artists` replaces a song's credits whole: the batch's songs' come from
    `touched_`/`staged_song_artists`, the others' stay as stored). Inside the step `scope_artist_stats`.
    `nothing`: the inputs did not change."""
    if nothing:
        con.execute(
            "CREATE OR REPLACE TEMP TABLE artist_credits AS SELECT NULL::VARCHAR AS song_id,"
            " NULL::VARCHAR AS artist_id, 0::BIGINT AS before, 0::BIGINT AS after LIMIT 0"
        )
        return
    others, values = old_credits_query(con)
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE artist_credits AS
        WITH moved AS ({_MOVED}),
        credits AS (
            SELECT song_id, artist_id, true AS before, true AS after FROM ({others})
            UNION ALL SELECT song_id, artist_id, true, false FROM touched_song_artists
                WHERE song_id IN (SELECT song_id FROM moved)
            UNION ALL SELECT song_id, artist_id, false, true FROM staged_song_artists
                WHERE song_id IN (SELECT song_id FROM moved)
        )
        SELECT song_id, artist_id, count(*) FILTER (WHERE before) AS before, count(*) FILTER (WHERE after) AS after
        FROM credits WHERE artist_id IS NOT NULL GROUP BY song_id, artist_id""",
        values,
    )


def stage_changed(con: duckdb.DuckDBPyConnection) -> bool:
    """`staged_artist_stats`: the moved artists' rows after the merge (none for an artist left without a
    position). True when computed from the changes; False when recomputed from the whole tables (a song
    whose credits changed has positions outside the changed playlists, or the stored rows disagree)."""
    probe = """SELECT song_id FROM artist_credits WHERE song_id IN (
                   (SELECT song_id FROM touched_playlist_songs EXCEPT SELECT song_id FROM staged_playlist_songs)
                   UNION (SELECT song_id FROM staged_playlist_songs EXCEPT SELECT song_id FROM touched_playlist_songs)
                   UNION (SELECT song_id FROM artist_credits GROUP BY song_id HAVING bool_or(before <> after)))"""
    named, values = _named(con, probe, "song_id")
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE artist_elsewhere AS
        SELECT DISTINCT x.song_id FROM old_playlist_songs x
        WHERE x.song_id IN ({probe}){named}
          AND x.playlist_id NOT IN (SELECT playlist_id FROM keys_playlist_songs)""",
        values,
    )
    try:
        recredited = con.execute(
            """SELECT EXISTS (SELECT 1 FROM artist_credits c JOIN artist_elsewhere e USING (song_id)
                              WHERE c.before <> c.after)"""
        ).fetchall()[0][0]
        if not recredited:
            con.execute(f"CREATE OR REPLACE TEMP TABLE staged_artist_stats AS {_FROM_CHANGES}")
            if _consistent(con):
                return True
            log.warning("artist_stats: the stored rows disagree with the changes; recomputing the moved artists")
    finally:
        con.execute("DROP TABLE artist_elsewhere")
    con.execute(f"CREATE OR REPLACE TEMP TABLE staged_artist_stats AS {CHANGED_ROWS_SQL}")
    return False


# The changed playlists' old (`touched_`) and new (`staged_playlist_songs`) positions with their credits
# before and after; a song with a position elsewhere adds or removes no song of its artists.
_FROM_CHANGES = """
    WITH positions AS (
        SELECT p.playlist_id, p.song_id, c.artist_id, -c.before AS credits, false AS now
        FROM touched_playlist_songs p JOIN artist_credits c ON c.song_id = p.song_id WHERE c.before > 0
        UNION ALL
        SELECT p.playlist_id, p.song_id, c.artist_id, c.after, true
        FROM staged_playlist_songs p JOIN artist_credits c ON c.song_id = p.song_id WHERE c.after > 0
    ),
    moved AS (
        SELECT artist_id, sum(credits) AS appearances,
               count(DISTINCT playlist_id) FILTER (WHERE now) - count(DISTINCT playlist_id) FILTER (WHERE NOT now)
                   AS playlists,
               count(DISTINCT song_id) FILTER (WHERE now AND NOT held) - count(DISTINCT song_id)
                   FILTER (WHERE NOT now AND NOT held) AS songs
        FROM (SELECT *, song_id IN (SELECT song_id FROM artist_elsewhere) AS held FROM positions)
        GROUP BY artist_id
    )
    SELECT k.artist_id,
           (coalesce(o.appearances, 0) + coalesce(m.appearances, 0))::BIGINT AS appearances,
           (coalesce(o.playlists, 0) + coalesce(m.playlists, 0))::BIGINT AS playlists,
           (coalesce(o.songs, 0) + coalesce(m.songs, 0))::BIGINT AS songs
    FROM keys_artist_stats k
    LEFT JOIN touched_artist_stats o ON o.artist_id = k.artist_id
    LEFT JOIN moved m ON m.artist_id = k.artist_id
    WHERE coalesce(o.appearances, 0) + coalesce(m.appearances, 0) <> 0
       OR coalesce(o.playlists, 0) + coalesce(m.playlists, 0) <> 0
       OR coalesce(o.songs, 0) + coalesce(m.songs, 0) <> 0"""


def _consistent(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether every staged row can be a recompute's: at least one appearance, playlist and song, and no
    more playlists or songs than appearances (a row of zeros, or a negative count, means the stored rows
    were not what the changes assume)."""
    bad = con.execute(
        """SELECT EXISTS (SELECT 1 FROM staged_artist_stats
           WHERE appearances < 1 OR playlists < 1 OR songs < 1 OR playlists > appearances OR songs > appearances)"""
    ).fetchall()[0][0]
    return not bad
