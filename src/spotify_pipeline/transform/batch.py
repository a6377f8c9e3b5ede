"""The step `build_batch`: raw files -> the batch relations (`b_*`), one row per key, the latest observation
within the batch. Every relation built here, with its columns, is declared in transform/relations.py.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import duckdb

from ..tables.contract import TABLES
from .partials import (
    PARTIALS,
    STREAK_FIELDS,
    PartialCompactor,
    add_album_observations,
    add_enriched_artists,
    add_track_observations,
    newest_row,
)
from .positions import playlist_header, read_playlist_batch, set_aside_inconsistent_positions
from .raw import ALBUM, ARTIST, BODY_TYPES, CHECK_META, PLAYABLE, RawFile, file_batches, pick, raw_relation, uris
from .relations import checked_step, step

if TYPE_CHECKING:
    from .quarantine import Quarantine


def _release_date(raw: str, precision: str) -> str:
    return f"""CASE
        WHEN {raw} IS NULL OR {raw} LIKE '0000%' THEN NULL
        WHEN {precision} = 'day' THEN try_strptime({raw}, '%Y-%m-%d')::DATE
        WHEN {precision} = 'month' THEN try_strptime({raw} || '-01', '%Y-%m-%d')::DATE
        WHEN {precision} = 'year' THEN try_strptime({raw} || '-01-01', '%Y-%m-%d')::DATE
    END"""


@step("build_batch")
def build_batch(
    con: duckdb.DuckDBPyConnection,
    files: dict[str, list[RawFile]],
    batch_bytes: int,
    quarantine: Quarantine | None = None,
) -> None:
    """Create the batch relations from raw files (the step `build_batch` of relations.py, which lists what it
    reads and builds). `complete` names the (run, playlist) pairs whose items were completely extracted.

    The playlist files (nearly all of the raw zone) are read in batches of about `batch_bytes` of JSON:
    each batch is parsed once, its positions are kept as narrow rows, and its nested track objects are
    folded into per-key partial aggregates, so memory follows the batch size and the number of distinct
    songs, not the number of playlist positions.

    With a `quarantine`, a response the strict typed read cannot take is set aside (`quarantine.rejected`)
    instead of failing the batch: only a batch whose read failed is screened, line by line, and read again
    without the odd lines. A playlist with a response set aside is not complete in that run, so it keeps
    the positions of its previous complete extraction; liked songs likewise."""
    for entity in BODY_TYPES:
        file_uris = [f.uri for f in files.get(entity, [])]
        if entity in STRICT_SMALL and quarantine is not None:
            # Read once here (they are small), so that an odd response is found now, not in a later query.
            _read_or_screen(con, _materialise(con, entity), files.get(entity, []), True, quarantine)
            continue
        con.execute(f"CREATE OR REPLACE TEMP VIEW raw_{entity} AS {_raw_select(entity, file_uris)}")

    playlist_files = files.get("playlists", []) + files.get("playlist_items", [])
    compact = PartialCompactor(con)
    for number, batch in enumerate(file_batches(playlist_files, batch_bytes)):
        _read_or_screen(con, lambda b, first: read_playlist_batch(con, b, first), batch, number == 0, quarantine)
        compact()
    repeated = None if quarantine is None else set_aside_inconsistent_positions(con, quarantine)
    if quarantine is not None and quarantine.rejected:
        # A playlist whose page was set aside in a later batch may have had complete positions earlier.
        con.execute(
            """DELETE FROM item_rows i WHERE NOT EXISTS
               (SELECT 1 FROM complete c WHERE c.run_id = i.run_id AND c.playlist_id = i.playlist_id)"""
        )

    # Tracks seen in the user sources: liked songs, recently played, top tracks (a table: folding reads them
    # twice, by rowid).
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE user_track_obs AS
        SELECT t.track.id AS song_id, t.track AS obj, fetched_at, NULL::TIMESTAMPTZ AS added_at
        FROM (SELECT unnest(body.items) AS t, fetched_at FROM raw_saved_tracks)
        WHERE t.track.id IS NOT NULL AND t.track.type = 'track'
        UNION ALL
        SELECT p.track.id, p.track, fetched_at, NULL::TIMESTAMPTZ
        FROM (SELECT unnest(body.items) AS p, fetched_at FROM raw_recently_played)
        WHERE p.track.id IS NOT NULL AND p.track.type = 'track'
        UNION ALL
        SELECT i.id, {pick(PLAYABLE, "i")}, fetched_at, NULL::TIMESTAMPTZ
        FROM (SELECT unnest(body.items) AS i, fetched_at FROM raw_top_items WHERE meta.kind = 'tracks')
        WHERE i.id IS NOT NULL
        UNION ALL
        SELECT t.id, t, fetched_at, NULL::TIMESTAMPTZ
        FROM (SELECT unnest(CASE meta.endpoint WHEN 'tracks' THEN body.tracks
                                               WHEN 'track' THEN [{pick(PLAYABLE, "body")}] END) AS t, fetched_at
              FROM raw_tracks)
        WHERE t.id IS NOT NULL AND coalesce(t.type, 'track') = 'track'"""
    )
    add_track_observations(con, "SELECT rowid AS obs_id, * FROM user_track_obs", first=False)
    con.execute("DROP VIEW track_obs")
    con.execute("DROP VIEW album_obs")
    con.execute("DROP TABLE user_track_obs")
    # Enriched albums and artists, in batches too: a batch response's list, or a single response as a
    # list of one. Each album batch is materialised once; it feeds both the album and the artist partials.
    for batch in file_batches(files.get("albums", []), batch_bytes):
        con.execute(
            f"""CREATE OR REPLACE TEMP TABLE batch_albums AS
            SELECT unnest(
                CASE meta.endpoint WHEN 'albums' THEN body.albums WHEN 'album' THEN [{pick(ALBUM, "body")}] END
            ) AS album, fetched_at, TRUE AS enriched
            FROM {raw_relation("albums", uris(batch))}"""
        )
        add_album_observations(con, "SELECT rowid AS obs_id, * FROM batch_albums", first=False)
        con.execute("DROP VIEW album_obs")
        con.execute("DROP TABLE batch_albums")
        compact()
    for batch in file_batches(files.get("artists", []), batch_bytes):
        add_enriched_artists(
            con,
            f"""SELECT unnest(CASE meta.endpoint WHEN 'artists' THEN body.artists
                                   WHEN 'artist' THEN [{pick(ARTIST, "body")}] END) AS artist, fetched_at
            FROM {raw_relation("artists", uris(batch))}""",
        )
    # Top artists: full artist objects too.
    add_enriched_artists(
        con,
        f"""SELECT {pick(ARTIST, "i")} AS artist, fetched_at
        FROM (SELECT unnest(body.items) AS i, fetched_at FROM raw_top_items WHERE meta.kind = 'artists')""",
    )
    _build_batch_tables(con, repeated)


# Entities read strictly and small enough to parse once into a temp table (user sources, snapshot checks).
STRICT_SMALL = ("playlist_checks", "saved_tracks", "recently_played")


def _materialise(con: duckdb.DuckDBPyConnection, entity: str) -> Callable[[list[RawFile], bool], Any]:
    def read(batch: list[RawFile], first: bool) -> None:
        con.execute(f"CREATE OR REPLACE TEMP TABLE raw_{entity} AS {_raw_select(entity, uris(batch))}")

    return read


def _raw_select(entity: str, file_uris: list[str]) -> str:
    """What `raw_<entity>` holds: the typed records, but for the snapshot checks only the playlist header each
    one carries. Every run checks every unchanged playlist (~100k checks at 10M items): kept whole and turned
    into headers afterwards, they cost a fifth more than this (docs/BENCHMARKS.md)."""
    if entity == "playlist_checks":
        return (
            f"SELECT run_id, fetched_at, {playlist_header('body')} AS header"
            f" FROM {raw_relation(entity, file_uris, meta_shape=CHECK_META)} WHERE body.id IS NOT NULL"
        )
    return f"SELECT * FROM {raw_relation(entity, file_uris)}"


def _read_or_screen(
    con: duckdb.DuckDBPyConnection,
    read: Callable[[list[RawFile], bool], Any],
    batch: list[RawFile],
    first: bool,
    quarantine: Quarantine | None,
) -> None:
    """`read(batch, first)`; when the typed read fails on some responses and there is a `quarantine`, read
    again without them (set aside, and their playlist or liked-songs extraction no longer complete)."""
    from .quarantine import READ_ERRORS

    try:
        read(batch, first)
        return
    except READ_ERRORS:
        if quarantine is None:
            raise
        seen = len(quarantine.rejected)
        screened = quarantine.screen(con, batch)
        if screened is None:
            raise
    incomplete = [(r.run_id, r.playlist_id) for r in quarantine.rejected[seen:] if r.playlist_id]
    if incomplete:
        con.execute(
            "DELETE FROM complete WHERE list_contains(?, run_id || '/' || playlist_id)",
            [[f"{run}/{playlist}" for run, playlist in incomplete]],
        )
    liked = [r.run_id for r in quarantine.rejected[seen:] if r.entity == "saved_tracks"]
    if liked:
        con.execute("DELETE FROM complete_sources WHERE source = 'liked' AND list_contains(?, run_id)", [liked])
    read(screened, first)


def _build_batch_tables(con: duckdb.DuckDBPyConnection, repeated: list[str] | None) -> None:
    """The `b_*` relations: one row per key, from the position rows and the partial aggregates. `repeated`:
    the extractions (`run_id/playlist_id`) holding some position more than once, or None if not known."""
    # Playlists whose latest complete extraction in the batch had no items (emptied upstream): no position
    # row says so, yet their earlier positions must go (merge.py `ReplaceChildren.emptied`).
    con.execute(
        """
        CREATE OR REPLACE TEMP TABLE e_playlist_songs AS
        WITH empty AS (
            SELECT c.playlist_id, max(h.fetched_at) AS extracted_at
            FROM complete c JOIN empty_pages h ON h.run_id = c.run_id AND h.playlist_id = c.playlist_id
            WHERE NOT EXISTS (SELECT 1 FROM item_rows i WHERE i.run_id = c.run_id AND i.playlist_id = c.playlist_id)
            GROUP BY ALL
        )
        SELECT e.playlist_id, e.extracted_at FROM empty e
        WHERE NOT EXISTS (SELECT 1 FROM item_rows i WHERE i.playlist_id = e.playlist_id
                          AND i.fetched_at > e.extracted_at)
        """
    )
    # A position read twice in one extraction (a page stored twice) is kept once, from the later fetch. Only
    # when some extraction repeats one: the window over every position was half of this statement's CPU
    # (0.33 of 0.69 CPU-s at 1M positions), for nothing in nearly every batch.
    once = (
        ""
        if repeated == []
        else "QUALIFY row_number() OVER (PARTITION BY playlist_id, run_id, position ORDER BY fetched_at DESC) = 1"
    )
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE b_playlist_songs AS
        SELECT playlist_id, position, item_type, song_id, item_uri, item_name, added_at, added_by, snapshot_id,
               fetched_at AS extracted_at, run_id
        FROM item_rows
        -- each playlist's latest extraction by fetch time (run ids sort by their start second only, so two runs
        -- started in the same second may not), one row per position of it. The latest run by a grouped
        -- arg_max and a semi-join, the emptied playlists left out of those ~10k rows: as a window over every
        -- position, or with the NOT IN on every position, it cost 2.5x the CPU (1M positions).
        SEMI JOIN (SELECT playlist_id, arg_max(run_id, fetched_at) AS run_id FROM item_rows GROUP BY playlist_id
                   HAVING playlist_id NOT IN (SELECT playlist_id FROM e_playlist_songs)) USING (playlist_id, run_id)
        {once}
        """
    )
    con.execute(f"CREATE OR REPLACE TEMP TABLE b_songs_full AS {PARTIALS['song_partials']}")
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE b_songs AS
        SELECT song_id, song.name AS name, song.duration_ms AS duration_ms, song.explicit AS explicit,
               song.popularity AS popularity, song.isrc AS isrc, song.disc_number AS disc_number,
               song.track_number AS track_number, song.album_id AS album_id, song.artist_ids[1] AS artist_id,
               song_added, song.uri AS uri, song.url AS url, first_seen_at, c.changed_at AS last_seen_at
        FROM b_songs_full LEFT JOIN {changed_at("song_streaks")} c USING (song_id)
        """
    )
    con.execute(
        """
        CREATE OR REPLACE TEMP TABLE b_song_artists AS
        SELECT song_id, artist_id, (idx - 1)::INTEGER AS position, last_seen_at
        FROM (SELECT song_id, last_seen_at, unnest(song.artist_ids) AS artist_id,
                     generate_subscripts(song.artist_ids, 1) AS idx
              FROM b_songs_full)
        WHERE artist_id IS NOT NULL
        """
    )
    con.execute("DROP TABLE b_songs_full")
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE b_albums_full AS
        SELECT g.album_id, a.album, g.enriched_at, g.first_seen_at, g.last_seen_at
        FROM {
            newest_row(
                "album_partials",
                "rowid",
                "album_id",
                "(enriched::INTEGER, last_seen_at)",
                "max(last_seen_at) FILTER (WHERE enriched) AS enriched_at, "
                "min(first_seen_at) AS first_seen_at, max(last_seen_at) AS last_seen_at",
            )
        }
        LEFT JOIN album_partials a ON a.rowid = g.newest
        """
    )
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE b_albums AS
        SELECT album_id, album.name AS name, album.album_type AS album_type,
               {_release_date("album.release_date", "album.release_date_precision")} AS release_date,
               album.release_date_precision AS release_date_precision, album.release_date AS release_date_raw,
               album.total_tracks AS total_tracks,
               CASE WHEN enriched_at IS NOT NULL THEN album.label END AS label,
               CASE WHEN enriched_at IS NOT NULL THEN album.external_ids.upc END AS upc,
               CASE WHEN enriched_at IS NOT NULL THEN album.popularity END AS popularity,
               album.uri AS uri, album.external_urls.spotify AS url, album.images[1].url AS image_url,
               enriched_at, first_seen_at, c.changed_at AS last_seen_at
        FROM b_albums_full LEFT JOIN {changed_at("album_streaks")} c USING (album_id)
        """
    )
    con.execute(
        """
        CREATE OR REPLACE TEMP TABLE b_album_artists AS
        SELECT album_id, a.id AS artist_id, (idx - 1)::INTEGER AS position, last_seen_at
        FROM (SELECT album_id, last_seen_at, unnest(album.artists) AS a, generate_subscripts(album.artists, 1) AS idx
              FROM b_albums_full)
        WHERE a.id IS NOT NULL
        """
    )
    con.execute("DROP TABLE b_albums_full")
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE b_artists AS
        WITH best AS (
            SELECT g.artist_id, a.artist, g.enriched_at, g.first_seen_at, g.last_seen_at
            FROM {
            newest_row(
                "artist_partials",
                "rowid",
                "artist_id",
                "(enriched::INTEGER, last_seen_at)",
                "max(last_seen_at) FILTER (WHERE enriched) AS enriched_at, "
                "min(first_seen_at) AS first_seen_at, max(last_seen_at) AS last_seen_at",
            )
        }
            LEFT JOIN artist_partials a ON a.rowid = g.newest
        )
        SELECT artist_id, artist.name AS name, artist.uri AS uri, artist.external_urls.spotify AS url,
               CASE WHEN enriched_at IS NOT NULL THEN artist.genres END AS genres,
               CASE WHEN enriched_at IS NOT NULL THEN artist.followers.total END AS followers,
               CASE WHEN enriched_at IS NOT NULL THEN artist.popularity END AS popularity,
               CASE WHEN enriched_at IS NOT NULL THEN artist.images[1].url END AS image_url,
               enriched_at, first_seen_at, c.changed_at AS last_seen_at
        FROM best LEFT JOIN {changed_at("artist_streaks")} c USING (artist_id)
        """
    )
    # Each observation of a playlist with the one before it in the batch. Nearly every playlist of a run is
    # only checked, once: `checked_once` (no other header observation) has nothing before it and needs no
    # window; it joins `b_playlists` as it is, and the window runs over the few others.
    con.execute(
        """
        CREATE OR REPLACE TEMP TABLE checked_once AS
        SELECT header.id AS playlist_id FROM raw_playlist_checks GROUP BY ALL HAVING count(*) = 1
        EXCEPT SELECT header.id FROM playlist_headers
        """
    )
    con.execute(
        """
        CREATE OR REPLACE TEMP TABLE playlist_observations AS
        WITH headers AS (
            SELECT header, fetched_at, true AS fetched FROM playlist_headers
            UNION ALL
            SELECT header, fetched_at, false FROM raw_playlist_checks
            WHERE header.id NOT IN (SELECT playlist_id FROM checked_once)
        )
        SELECT header.id AS playlist_id, header, fetched_at, fetched,
               lag(header) OVER (PARTITION BY header.id ORDER BY fetched_at, NOT fetched) AS previous
        FROM headers
        """
    )
    # A playlist's `extracted_at` is when the pipeline last found something new for it: a full fetch, or a
    # snapshot check whose metadata differed from the observation before it. A check that finds the
    # playlist as it was changes nothing (every run checks every unchanged playlist: moving a time on each
    # row would rewrite the whole table every run). The batch's first observation counts here; whether it
    # differs from the stored row is known once the table is registered (`drop_rechecked_playlists`).
    con.execute(
        """
        CREATE OR REPLACE TEMP TABLE rechecked_playlists AS
        SELECT playlist_id FROM playlist_observations GROUP BY playlist_id
        HAVING count(*) FILTER (WHERE fetched OR (previous IS NOT NULL AND header IS DISTINCT FROM previous)) = 0
        UNION ALL SELECT playlist_id FROM checked_once
        """
    )
    con.execute(
        """
        CREATE OR REPLACE TEMP TABLE b_playlists AS
        WITH latest AS (
            SELECT playlist_id, arg_max(header, fetched_at) AS h,
                   max(fetched_at) FILTER (WHERE fetched OR previous IS NULL OR header IS DISTINCT FROM previous)
                       AS extracted_at
            FROM playlist_observations GROUP BY playlist_id
        ),
        items AS (SELECT playlist_id, max(extracted_at) AS items_extracted_at
                  FROM (SELECT playlist_id, extracted_at FROM b_playlist_songs
                        UNION ALL SELECT playlist_id, extracted_at FROM e_playlist_songs) GROUP BY ALL)
        SELECT l.playlist_id, h.name AS name, h.description AS description, h.owner_id AS owner_id,
               h.owner_name AS owner_name, h.public AS public, h.collaborative AS collaborative,
               h.followers AS followers, h.snapshot_id AS snapshot_id, h.total_items AS total_items,
               h.url AS url, h.uri AS uri, h.image_url AS image_url, extracted_at, i.items_extracted_at
        FROM (SELECT * FROM latest UNION ALL
              SELECT header.id, header, fetched_at FROM raw_playlist_checks
              WHERE header.id IN (SELECT playlist_id FROM checked_once)) l
        LEFT JOIN items i USING (playlist_id)
        """
    )
    con.execute("DROP TABLE playlist_observations")
    con.execute("DROP TABLE checked_once")
    con.execute(f"CREATE OR REPLACE TEMP TABLE b_song_popularity AS {PARTIALS['popularity_partials']}")


def changed_at(streaks: str) -> str:
    """Per key, when its values last changed (partials.py, "Streaks"): the start of its last streak, a
    subquery of (key, changed_at). What `last_seen_at` of songs, albums and artists holds."""
    key = STREAK_FIELDS[streaks][0]
    return f"(SELECT {key}, max(since) AS changed_at FROM ({PARTIALS[streaks]}) GROUP BY {key})"


def drop_rechecked_playlists(con: duckdb.DuckDBPyConnection) -> None:
    """Drop from `b_playlists` the playlists this batch only checked and found as `old_playlists` holds them
    (the same metadata): the stored row, and its `extracted_at`, stay as they are. A rebuild has no old rows,
    so there the first observation counts, as it did when it was new."""
    same = " AND ".join(
        f"o.{c} IS NOT DISTINCT FROM b_playlists.{c}"
        for c in TABLES["playlists"].schema.names
        if c not in ("playlist_id", "extracted_at", "items_extracted_at")
    )
    with checked_step(con, "drop_rechecked_playlists"):
        con.execute(
            f"""DELETE FROM b_playlists
            WHERE playlist_id IN (SELECT playlist_id FROM rechecked_playlists)
              AND EXISTS (SELECT 1 FROM old_playlists o WHERE o.playlist_id = b_playlists.playlist_id AND {same})"""
        )
