"""Raw API pages -> normalized batch relations, in DuckDB SQL over the compressed NDJSON part files.

No per-item Python: each raw file is parsed once by DuckDB's JSON reader into typed structs (only the
fields we use; unknown fields are ignored), and every relation below is a set-based query over them.
The batch relations (`b_*`) hold one row per key: the latest observation within the batch. Every relation
built here, with its columns and the step that builds it, is declared in transform/relations.py.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import duckdb

from .relations import step

if TYPE_CHECKING:
    from .quarantine import Quarantine

# The fields read from each object, as nested dicts: {name: DuckDB type | nested dict | [element]}.
Shape = dict[str, Any]
EXTERNAL_URLS: Shape = {"spotify": "VARCHAR"}
IMAGE: Shape = {"url": "VARCHAR"}  # only the first image's url is kept
ARTIST_REF: Shape = {"id": "VARCHAR", "name": "VARCHAR", "uri": "VARCHAR", "external_urls": EXTERNAL_URLS}
ALBUM: Shape = {
    "id": "VARCHAR",
    "name": "VARCHAR",
    "album_type": "VARCHAR",
    "release_date": "VARCHAR",
    "release_date_precision": "VARCHAR",
    "total_tracks": "INTEGER",
    "label": "VARCHAR",
    "popularity": "INTEGER",
    "external_ids": {"upc": "VARCHAR"},
    "uri": "VARCHAR",
    "external_urls": EXTERNAL_URLS,
    "images": [IMAGE],
    "artists": [ARTIST_REF],
}
ARTIST: Shape = {
    "id": "VARCHAR",
    "name": "VARCHAR",
    "uri": "VARCHAR",
    "external_urls": EXTERNAL_URLS,
    "genres": ["VARCHAR"],
    "followers": {"total": "BIGINT"},
    "popularity": "INTEGER",
    "images": [IMAGE],
}
PLAYABLE: Shape = {
    "type": "VARCHAR",
    "id": "VARCHAR",
    "name": "VARCHAR",
    "uri": "VARCHAR",
    "duration_ms": "BIGINT",
    "explicit": "BOOLEAN",
    "popularity": "INTEGER",
    "disc_number": "INTEGER",
    "track_number": "INTEGER",
    "is_local": "BOOLEAN",
    "external_ids": {"isrc": "VARCHAR"},
    "external_urls": EXTERNAL_URLS,
    "artists": [ARTIST_REF],
    "album": ALBUM,
}
PLAYLIST_ITEM: Shape = {
    "added_at": "VARCHAR",
    "added_by": {"id": "VARCHAR"},
    "is_local": "BOOLEAN",
    "item": PLAYABLE,
    "track": PLAYABLE,
}
PAGE: Shape = {"offset": "BIGINT", "total": "BIGINT", "items": [PLAYLIST_ITEM]}
PLAYLIST: Shape = {
    "id": "VARCHAR",
    "name": "VARCHAR",
    "description": "VARCHAR",
    "public": "BOOLEAN",
    "collaborative": "BOOLEAN",
    "snapshot_id": "VARCHAR",
    "uri": "VARCHAR",
    "external_urls": EXTERNAL_URLS,
    "owner": {"id": "VARCHAR", "display_name": "VARCHAR"},
    "followers": {"total": "BIGINT"},
    "images": [IMAGE],
    "items": PAGE,
    "tracks": PAGE,
}
META: Shape = {
    "run_id": "VARCHAR",
    "entity": "VARCHAR",
    "endpoint": "VARCHAR",
    "url": "VARCHAR",
    "fetched_at": "VARCHAR",
    "playlist_id": "VARCHAR",
    "snapshot_id": "VARCHAR",
    "user_id": "VARCHAR",
    "kind": "VARCHAR",
    "time_range": "VARCHAR",
}
# Since 2026 the API sends each position's track or episode twice, as `item` and as its deprecated alias
# `track` (and a playlist's first page may come as `items` and as `tracks`). Reading both into structs would
# parse the largest objects of the raw zone twice, so playlist files are read in the *current* shape: the
# deprecated fields only as markers of presence. A file in which some response has only the deprecated
# field (written before the rename) is read again in the shapes above, which take either.
CURRENT_PAGE: Shape = {**PAGE, "items": [{**PLAYLIST_ITEM, "track": {"type": "VARCHAR"}}]}
CURRENT_PLAYLIST: Shape = {**PLAYLIST, "items": CURRENT_PAGE, "tracks": {"total": "BIGINT"}}
SAVED_PAGE: Shape = {"items": [{"added_at": "VARCHAR", "track": PLAYABLE}]}
PLAYS_PAGE: Shape = {
    "items": [{"played_at": "VARCHAR", "track": PLAYABLE, "context": {"type": "VARCHAR", "uri": "VARCHAR"}}]
}


def sql_type(shape: Any) -> str:
    """The DuckDB type of a shape, e.g. STRUCT("id" VARCHAR, "images" STRUCT(...)[])."""
    if isinstance(shape, str):
        return shape
    if isinstance(shape, list):
        return sql_type(shape[0]) + "[]"
    return "STRUCT(" + ", ".join(f'"{name}" {sql_type(kind)}' for name, kind in shape.items()) + ")"


def pick(shape: Shape, expr: str) -> str:
    """A struct literal of `shape`'s top-level fields taken from `expr`, which has at least those fields
    (e.g. one album out of a body typed as the union of single and batch responses)."""
    return "{" + ", ".join(f"'{name}': {expr}.\"{name}\"" for name in shape) + "}"


# Responses that come in two shapes are read as the union of both, so that DuckDB's JSON reader parses
# each body once into typed structs (fields a shape lacks are NULL): an album or artist endpoint answers
# one object, the batch endpoint `{"albums": [...]}`; a top-items page lists artists or tracks by kind.
ALBUMS_BODY: Shape = {**ALBUM, "albums": [ALBUM]}
ARTISTS_BODY: Shape = {**ARTIST, "artists": [ARTIST]}
TOP_ITEMS_PAGE: Shape = {"items": [{**PLAYABLE, **ARTIST}]}
TRACKS_BODY: Shape = {**PLAYABLE, "tracks": [PLAYABLE]}  # `/tracks/{id}` or `/tracks?ids=`

# Enrichment responses tolerate a field of an unexpected type (e.g. an API change): that field reads as NULL
# and the rest of the object is kept, as `json_transform` did when these bodies were read as JSON text. The
# playlist bodies, whose positions are the tables' backbone, stay strict.
LENIENT = frozenset({"artists", "albums", "top_items", "tracks"})

BODY_TYPES: dict[str, Any] = {
    "playlists": PLAYLIST,
    "playlist_checks": PLAYLIST,
    "playlist_items": PAGE,
    "artists": ARTISTS_BODY,
    "albums": ALBUMS_BODY,
    "saved_tracks": SAVED_PAGE,
    "recently_played": PLAYS_PAGE,
    "top_items": TOP_ITEMS_PAGE,
    "tracks": TRACKS_BODY,
}


def _quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def raw_relation(entity: str, files: Sequence[str], body_shape: Shape | None = None, filename: bool = False) -> str:
    """SQL for the raw records of `entity` in `files`: columns run_id, fetched_at, meta, body (typed as
    `body_shape`, by default the entity's), and with `filename` the file each record came from."""
    body = sql_type(body_shape or BODY_TYPES[entity])
    meta = sql_type(META)
    if not files:
        return (
            f"(SELECT NULL::VARCHAR AS run_id, NULL::TIMESTAMPTZ AS fetched_at, NULL::{meta} AS meta,"
            f" NULL::{body} AS body{', NULL::VARCHAR AS filename' if filename else ''} LIMIT 0)"
        )
    file_list = "[" + ", ".join(_quote(f) for f in files) + "]"
    return (
        f"(SELECT meta.run_id AS run_id, meta.fetched_at::TIMESTAMPTZ AS fetched_at, meta, body"
        f"{', filename' if filename else ''} FROM read_json("
        f"{file_list}, format='newline_delimited', compression='gzip', maximum_object_size=33554432,"
        f" ignore_errors={'true' if entity in LENIENT else 'false'}, filename={'true' if filename else 'false'},"
        f" columns={{'meta': '{meta}', 'body': '{body}'}}))"
    )


def _release_date(raw: str, precision: str) -> str:
    return f"""CASE
        WHEN {raw} IS NULL OR {raw} LIKE '0000%' THEN NULL
        WHEN {precision} = 'day' THEN try_strptime({raw}, '%Y-%m-%d')::DATE
        WHEN {precision} = 'month' THEN try_strptime({raw} || '-01', '%Y-%m-%d')::DATE
        WHEN {precision} = 'year' THEN try_strptime({raw} || '-01-01', '%Y-%m-%d')::DATE
    END"""


@step("build_user_tables")
def build_user_tables(con: duckdb.DuckDBPyConnection) -> None:
    """`b_saved_songs`, `b_plays`, `b_user_top` from the user sources (liked, recently played, top).
    Reads `complete_sources` (relations.py): liked songs replace the previous set only when a run fetched all
    of them."""
    con.execute(
        """
        CREATE OR REPLACE TEMP TABLE b_saved_songs AS
        -- the liked songs of each user's latest complete extraction of them (songs unliked since are gone)
        WITH pages AS (
            SELECT meta.user_id AS user_id, run_id, fetched_at, unnest(body.items) AS s FROM raw_saved_tracks
            WHERE run_id IN (SELECT run_id FROM complete_sources WHERE source = 'liked')
        ),
        -- latest by fetch time: run ids sort by their start second only, so two runs in one second may not
        latest AS (SELECT user_id, arg_max(run_id, fetched_at) AS run_id FROM pages GROUP BY user_id)
        SELECT p.user_id, p.s.track.id AS song_id, min(TRY_CAST(p.s.added_at AS TIMESTAMPTZ)) AS added_at,
               max(p.fetched_at) AS extracted_at
        FROM pages p JOIN latest USING (user_id, run_id)
        WHERE p.s.track.id IS NOT NULL AND p.s.track.type = 'track'
        GROUP BY p.user_id, p.s.track.id
        """
    )
    con.execute(
        """
        CREATE OR REPLACE TEMP TABLE b_plays AS
        SELECT meta.user_id AS user_id, p.played_at::TIMESTAMPTZ AS played_at, p.track.id AS song_id,
               p.context.type AS context_type, p.context.uri AS context_uri, fetched_at AS extracted_at
        FROM (SELECT meta, fetched_at, unnest(body.items) AS p FROM raw_recently_played)
        WHERE p.played_at IS NOT NULL
        QUALIFY row_number() OVER (PARTITION BY user_id, played_at ORDER BY fetched_at DESC) = 1
        """
    )
    con.execute(
        """
        CREATE OR REPLACE TEMP TABLE b_user_top AS
        SELECT meta.user_id AS user_id, fetched_at::DATE AS observed_date, meta.time_range AS time_range,
               CASE meta.kind WHEN 'artists' THEN 'artist' ELSE 'track' END AS item_type,
               (idx - 1)::INTEGER AS rank, item.id AS item_id, item.name AS item_name, fetched_at AS observed_at
        FROM (SELECT meta, fetched_at, unnest(body.items) AS item, generate_subscripts(body.items, 1) AS idx
              FROM raw_top_items)
        QUALIFY row_number() OVER (PARTITION BY user_id, observed_date, time_range, item_type, rank
                                   ORDER BY fetched_at DESC) = 1
        """
    )


@step("build_changes")
def build_changes(con: duckdb.DuckDBPyConnection) -> None:
    """`b_playlist_changes`: what each complete extraction added to or removed from its playlist, compared
    with the extraction before it (in this batch, or the membership already in `old_playlist_songs`).
    Diffing consecutive runs inside the batch makes a rebuild give the same changes as run-by-run."""
    con.execute(
        """
        CREATE OR REPLACE TEMP TABLE b_playlist_changes AS
        WITH members AS (
            SELECT playlist_id, run_id, max(fetched_at) OVER (PARTITION BY playlist_id, run_id) AS seen, snapshot_id,
                   item_uri, song_id, item_name
            FROM item_rows WHERE item_type IN ('track', 'episode')
            UNION ALL
            SELECT playlist_id, run_id, extracted_at, snapshot_id, item_uri, song_id, item_name
            FROM old_playlist_songs WHERE item_type IN ('track', 'episode')
        ),
        items AS (SELECT DISTINCT playlist_id, run_id, seen, snapshot_id, item_uri, song_id, item_name FROM members),
        runs AS (
            SELECT playlist_id, run_id, seen, snapshot_id,
                   lag(run_id) OVER (PARTITION BY playlist_id ORDER BY seen, run_id) AS previous_run_id,
                   lag(snapshot_id) OVER (PARTITION BY playlist_id ORDER BY seen, run_id) AS previous_snapshot_id
            FROM (SELECT DISTINCT playlist_id, run_id, seen, snapshot_id FROM items)
        ),
        batch_runs AS (SELECT * FROM runs WHERE previous_run_id IS NOT NULL
                       AND run_id IN (SELECT run_id FROM item_rows))
        SELECT r.playlist_id, r.seen AS changed_at, r.run_id, r.previous_run_id, r.snapshot_id, r.previous_snapshot_id,
               'added' AS change, i.item_uri, i.song_id, i.item_name
        FROM batch_runs r JOIN items i ON i.playlist_id = r.playlist_id AND i.run_id = r.run_id
        WHERE NOT EXISTS (SELECT 1 FROM items p WHERE p.playlist_id = r.playlist_id
                          AND p.run_id = r.previous_run_id AND p.item_uri = i.item_uri)
        UNION ALL
        SELECT r.playlist_id, r.seen, r.run_id, r.previous_run_id, r.snapshot_id, r.previous_snapshot_id,
               'removed', p.item_uri, p.song_id, p.item_name
        FROM batch_runs r JOIN items p ON p.playlist_id = r.playlist_id AND p.run_id = r.previous_run_id
        WHERE NOT EXISTS (SELECT 1 FROM items i WHERE i.playlist_id = r.playlist_id
                          AND i.run_id = r.run_id AND i.item_uri = p.item_uri)
        """
    )


@dataclass(frozen=True)
class RawFile:
    """One raw part file to read: where it is and how many bytes of JSON it holds (sizes the batches)."""

    entity: str
    uri: str
    raw_bytes: int


def file_batches(files: Sequence[RawFile], batch_bytes: int) -> list[list[RawFile]]:
    """Consecutive groups of files holding at most `batch_bytes` of JSON each (at least one file each);
    always one group, possibly empty, so the batch tables exist even when there is nothing to read."""
    batches: list[list[RawFile]] = [[]]
    size = 0
    for raw_file in files:
        if batches[-1] and size + raw_file.raw_bytes > batch_bytes:
            batches.append([])
            size = 0
        batches[-1].append(raw_file)
        size += raw_file.raw_bytes
    return batches


def _uris(batch: list[RawFile], entity: str | None = None) -> list[str]:
    return [f.uri for f in batch if entity is None or f.entity == entity]


def _accumulate(con: duckdb.DuckDBPyConnection, table: str, select: str, first: bool) -> None:
    """Create `table` from the first batch's rows, append the later batches' rows."""
    if first:
        con.execute(f"CREATE OR REPLACE TEMP TABLE {table} AS {select}")
    else:
        con.execute(f"INSERT INTO {table} {select}")


def _playlist_header(body: str) -> str:
    """The playlist fields the tables keep, as one small struct (the embedded item page is left out)."""
    return f"""{{'id': {body}.id, 'name': {body}.name, 'description': {body}.description,
        'owner_id': {body}.owner.id, 'owner_name': {body}.owner.display_name, 'public': {body}.public,
        'collaborative': {body}.collaborative, 'followers': {body}.followers.total,
        'snapshot_id': {body}.snapshot_id, 'total_items': coalesce({body}.items.total, {body}.tracks.total),
        'url': {body}.external_urls.spotify, 'uri': {body}.uri, 'image_url': {body}.images[1].url}}"""


def _positions_sql(playlists: str, pages: str, current: bool) -> str:
    """One pass over parsed pages: every position observed (embedded first pages and item pages), each
    playlist header riding on its page's first row (an empty page still yields that one row). Nothing
    page-sized is materialised: DuckDB streams the parsed records straight into position rows.
    `current`: the pages were read in the current shape (`CURRENT_PLAYLIST`, `CURRENT_PAGE`), and
    `needs_deprecated` marks the positions that need the file read again in the shape taking either."""
    if current:
        page, page_old = "body.items", "body.items IS NULL AND body.tracks IS NOT NULL"
        obj, obj_old = "it.item", "it.item IS NULL AND it.track IS NOT NULL"
    else:
        page, page_old = "coalesce(body.items, body.tracks)", "FALSE"
        obj, obj_old = "coalesce(it.item, it.track)", "FALSE"
    return f"""
        WITH pages AS (
            SELECT run_id, fetched_at, meta.playlist_id AS playlist_id, {_playlist_header("body")} AS header,
                   {page} AS page, {page_old} AS page_old, filename
            FROM {playlists}
            UNION ALL
            SELECT run_id, fetched_at, meta.playlist_id, NULL, body, FALSE, filename FROM {pages}
        ),
        rows AS (
            SELECT run_id, fetched_at, playlist_id, header, page."offset" AS page_offset, page_old, filename,
                   coalesce(len(page.items), 0) > 0 AS has_items,
                   unnest(CASE WHEN len(page.items) > 0 THEN page.items ELSE [NULL] END) AS it,
                   generate_subscripts(CASE WHEN len(page.items) > 0 THEN page.items ELSE [NULL] END, 1) AS idx
            FROM pages
        ),
        objs AS (SELECT *, {obj} AS obj, page_old OR coalesce({obj_old}, FALSE) AS needs_deprecated FROM rows)
        SELECT o.run_id, o.fetched_at, o.playlist_id, c.snapshot_id,
               CASE WHEN o.idx = 1 THEN o.header END AS header, o.has_items AND c.run_id IS NOT NULL AS complete,
               (coalesce(o.page_offset, 0) + o.idx - 1)::INTEGER AS position,
               -- Spotify's placeholders for "unknown" (very old and editorial positions) are not facts: NULL
               nullif(TRY_CAST(o.it.added_at AS TIMESTAMPTZ), TIMESTAMPTZ '1970-01-01 00:00:00+00') AS added_at,
               nullif(o.it.added_by.id, '') AS added_by, o.obj,
               CASE
                   WHEN o.it.is_local OR o.obj.is_local THEN 'local'
                   WHEN o.obj IS NULL THEN 'unavailable'
                   WHEN o.obj.type = 'episode' THEN 'episode'
                   WHEN o.obj.type IS DISTINCT FROM 'track' THEN 'unavailable'
                   WHEN o.obj.id IS NULL THEN 'unavailable'
                   ELSE 'track'
               END AS item_type,
               o.filename, o.needs_deprecated, o.has_items
        FROM objs o LEFT JOIN complete c USING (run_id, playlist_id)
        """


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


def _add_track_observations(con: duckdb.DuckDBPyConnection, observations: str, first: bool) -> None:
    """Fold track observations (`song_id, obj, fetched_at, added_at`) into per-key partial aggregates:
    the newest observation of each song, album and artist, their first and last sighting, and each song's
    popularity per day. Newest-wins and min/max are decomposable, so the final aggregate over the partials
    equals one aggregate over every observation, however the raw files were batched."""
    con.execute(f"CREATE OR REPLACE TEMP VIEW track_obs AS {observations}")
    _accumulate(
        con,
        "song_partials",
        f"""SELECT song_id, arg_max(song, fetched_at) AS song, max(fetched_at) AS last_seen_at,
                   min(fetched_at) AS first_seen_at, min(added_at) AS song_added
            FROM (SELECT song_id, {SONG_FIELDS} AS song, fetched_at, added_at FROM track_obs)
            GROUP BY song_id""",
        first,
    )
    _accumulate(
        con,
        "popularity_partials",
        """SELECT song_id, fetched_at::DATE AS observed_date, arg_max(obj.popularity, fetched_at) AS popularity,
                  max(fetched_at) AS observed_at
           FROM track_obs WHERE obj.popularity IS NOT NULL GROUP BY ALL""",
        first,
    )
    _add_artist_refs(con, "obj.artists", "track_obs", first)
    _add_album_observations(
        con,
        "SELECT obj.album AS album, fetched_at, FALSE AS enriched FROM track_obs WHERE obj.album.id IS NOT NULL",
        first,
    )


def _add_album_observations(con: duckdb.DuckDBPyConnection, observations: str, first: bool) -> None:
    """Fold album observations (`album, fetched_at, enriched`) and the artists named on them into partials."""
    con.execute(f"CREATE OR REPLACE TEMP VIEW album_obs AS {observations}")
    _accumulate(
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
    _accumulate(
        con,
        "artist_partials",
        f"""SELECT artist.id AS artist_id, arg_max(artist, fetched_at) AS artist, FALSE AS enriched,
                   max(fetched_at) AS last_seen_at, min(fetched_at) AS first_seen_at
            FROM (SELECT a::{sql_type(ARTIST)} AS artist, fetched_at
                  FROM (SELECT unnest({refs}) AS a, fetched_at FROM {observations}))
            WHERE artist.id IS NOT NULL GROUP BY artist.id""",
        first,
    )


def _add_enriched_artists(con: duckdb.DuckDBPyConnection, artists: str) -> None:
    """Add full artist objects (`artist, fetched_at` rows from enrichment or top-artist responses)."""
    con.execute(
        f"""INSERT INTO artist_partials SELECT artist.id, artist, TRUE, fetched_at, fetched_at
            FROM ({artists}) WHERE artist.id IS NOT NULL"""
    )


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
        uris = [f.uri for f in files.get(entity, [])]
        if entity in STRICT_SMALL and quarantine is not None:
            # Read once here (they are small), so that an odd response is found now, not in a later query.
            _read_or_screen(con, _materialise(con, entity), files.get(entity, []), True, quarantine)
            continue
        con.execute(f"CREATE OR REPLACE TEMP VIEW raw_{entity} AS SELECT * FROM {raw_relation(entity, uris)}")

    playlist_files = files.get("playlists", []) + files.get("playlist_items", [])
    compact = PartialCompactor(con)
    for number, batch in enumerate(file_batches(playlist_files, batch_bytes)):
        _read_or_screen(con, lambda b, first: _read_playlist_batch(con, b, first), batch, number == 0, quarantine)
        compact()
    if quarantine is not None:
        _set_aside_inconsistent_positions(con, quarantine)
    if quarantine is not None and quarantine.rejected:
        # A playlist whose page was set aside in a later batch may have had complete positions earlier.
        con.execute(
            """DELETE FROM item_rows i WHERE NOT EXISTS
               (SELECT 1 FROM complete c WHERE c.run_id = i.run_id AND c.playlist_id = i.playlist_id)"""
        )

    # Tracks seen in the user sources: liked songs, recently played, top tracks.
    _add_track_observations(
        con,
        f"""SELECT t.track.id AS song_id, t.track AS obj, fetched_at, NULL::TIMESTAMPTZ AS added_at
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
        WHERE t.id IS NOT NULL AND coalesce(t.type, 'track') = 'track'""",
        first=False,
    )
    con.execute("DROP VIEW track_obs")
    con.execute("DROP VIEW album_obs")
    # Enriched albums and artists, in batches too: a batch response's list, or a single response as a
    # list of one. Each album batch is materialised once; it feeds both the album and the artist partials.
    for batch in file_batches(files.get("albums", []), batch_bytes):
        con.execute(
            f"""CREATE OR REPLACE TEMP TABLE batch_albums AS
            SELECT unnest(
                CASE meta.endpoint WHEN 'albums' THEN body.albums WHEN 'album' THEN [{pick(ALBUM, "body")}] END
            ) AS album, fetched_at, TRUE AS enriched
            FROM {raw_relation("albums", _uris(batch))}"""
        )
        _add_album_observations(con, "SELECT * FROM batch_albums", first=False)
        con.execute("DROP VIEW album_obs")
        con.execute("DROP TABLE batch_albums")
        compact()
    for batch in file_batches(files.get("artists", []), batch_bytes):
        _add_enriched_artists(
            con,
            f"""SELECT unnest(CASE meta.endpoint WHEN 'artists' THEN body.artists
                                   WHEN 'artist' THEN [{pick(ARTIST, "body")}] END) AS artist, fetched_at
            FROM {raw_relation("artists", _uris(batch))}""",
        )
    # Top artists: full artist objects too.
    _add_enriched_artists(
        con,
        f"""SELECT {pick(ARTIST, "i")} AS artist, fetched_at
        FROM (SELECT unnest(body.items) AS i, fetched_at FROM raw_top_items WHERE meta.kind = 'artists')""",
    )
    _build_batch_tables(con)


# Entities read strictly and small enough to parse once into a temp table (user sources, snapshot checks).
STRICT_SMALL = ("playlist_checks", "saved_tracks", "recently_played")


def _materialise(con: duckdb.DuckDBPyConnection, entity: str) -> Callable[[list[RawFile], bool], Any]:
    def read(batch: list[RawFile], first: bool) -> None:
        con.execute(f"CREATE OR REPLACE TEMP TABLE raw_{entity} AS SELECT * FROM {raw_relation(entity, _uris(batch))}")

    return read


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


def _set_aside_inconsistent_positions(con: duckdb.DuckDBPyConnection, quarantine: Quarantine) -> None:
    """A complete extraction whose positions are not 0..n-1 with n the items the extractor read (a page with
    a wrong `offset`, a page missing) is not one version of the playlist: it is set aside as a whole, so the
    playlist keeps its previous positions instead of failing the quality gate for every playlist, run after
    run (an unchanged playlist is not read again). Values of the right type but no meaning reach here."""
    bad = con.execute(
        """SELECT c.run_id, c.playlist_id, c.manifest, c.items, count(DISTINCT i.position) AS n,
                  min(i.position) AS lo, max(i.position) AS hi
           FROM complete c LEFT JOIN item_rows i USING (run_id, playlist_id)
           GROUP BY ALL
           HAVING (n > 0 AND (lo <> 0 OR hi <> n - 1)) OR (c.items IS NOT NULL AND n <> c.items)
           ORDER BY 1, 2"""
    ).fetchall()
    for run_id, playlist_id, manifest, items, n, lo, hi in bad:
        quarantine.reject_extraction(
            manifest,
            run_id,
            playlist_id,
            f"positions are not one whole extraction: {n} distinct positions from {lo} to {hi}, "
            f"the extractor read {items} items",
        )
    if bad:
        pairs = [f"{run}/{playlist}" for run, playlist, *_ in bad]
        con.execute("DELETE FROM complete WHERE list_contains(?, run_id || '/' || playlist_id)", [pairs])


def _read_playlist_batch(con: duckdb.DuckDBPyConnection, batch: list[RawFile], first: bool) -> None:
    """Parse one batch of playlist and item-page files once; keep narrow position rows and playlist headers,
    fold the nested track objects into the partials."""
    playlist_files, page_files = _uris(batch, "playlists"), _uris(batch, "playlist_items")
    con.execute(
        "CREATE OR REPLACE TEMP TABLE batch_positions AS "
        + _positions_sql(
            raw_relation("playlists", playlist_files, CURRENT_PLAYLIST, filename=True),
            raw_relation("playlist_items", page_files, CURRENT_PAGE, filename=True),
            current=True,
        )
    )
    # Files in which some response has only the deprecated `tracks` / `track` are read again, whole, in
    # the shape that takes either (a file may mix responses from before and after the rename).
    old = {f for (f,) in con.execute("SELECT DISTINCT filename FROM batch_positions WHERE needs_deprecated").fetchall()}
    if old:
        con.execute("DELETE FROM batch_positions WHERE list_contains(?, filename)", [sorted(old)])
        con.execute(
            "INSERT INTO batch_positions "
            + _positions_sql(
                raw_relation("playlists", [f for f in playlist_files if f in old], filename=True),
                raw_relation("playlist_items", [f for f in page_files if f in old], filename=True),
                current=False,
            )
        )
    _accumulate(
        con,
        "playlist_headers",
        "SELECT header, fetched_at, run_id FROM batch_positions WHERE header.id IS NOT NULL",
        first,
    )
    _accumulate(  # pages without items: how an emptied playlist's complete extraction is seen, and when
        con,
        "empty_pages",
        "SELECT run_id, playlist_id, fetched_at FROM batch_positions WHERE NOT has_items",
        first,
    )
    _accumulate(
        con,
        "item_rows",
        """SELECT run_id, fetched_at, playlist_id, snapshot_id, position, added_at, added_by, item_type,
                  CASE WHEN item_type = 'track' THEN obj.id END AS song_id, obj.uri AS item_uri,
                  obj.name AS item_name
           FROM batch_positions WHERE complete""",
        first,
    )
    _add_track_observations(
        con,
        "SELECT obj.id AS song_id, obj, fetched_at, added_at FROM batch_positions"
        " WHERE complete AND item_type = 'track'",
        first,
    )
    con.execute("DROP VIEW track_obs")
    con.execute("DROP VIEW album_obs")
    con.execute("DROP TABLE batch_positions")


def _build_batch_tables(con: duckdb.DuckDBPyConnection) -> None:
    """The `b_*` relations: one row per key, from the position rows and the partial aggregates."""
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
    con.execute(
        """
        CREATE OR REPLACE TEMP TABLE b_playlist_songs AS
        SELECT playlist_id, position, item_type, song_id, item_uri, item_name, added_at, added_by, snapshot_id,
               fetched_at AS extracted_at, run_id
        FROM item_rows
        WHERE playlist_id NOT IN (SELECT playlist_id FROM e_playlist_songs)
        -- each playlist's latest extraction by fetch time (run ids sort by their start second only, so two runs
        -- started in the same second may not), one row per position of it
        QUALIFY run_id = arg_max(run_id, fetched_at) OVER (PARTITION BY playlist_id)
            AND row_number() OVER (PARTITION BY playlist_id, run_id, position ORDER BY fetched_at DESC) = 1
        """
    )
    con.execute(f"CREATE OR REPLACE TEMP TABLE b_songs_full AS {PARTIALS['song_partials']}")
    con.execute(
        """
        CREATE OR REPLACE TEMP TABLE b_songs AS
        SELECT song_id, song.name AS name, song.duration_ms AS duration_ms, song.explicit AS explicit,
               song.popularity AS popularity, song.isrc AS isrc, song.disc_number AS disc_number,
               song.track_number AS track_number, song.album_id AS album_id, song.artist_ids[1] AS artist_id,
               song_added, song.uri AS uri, song.url AS url, first_seen_at, last_seen_at
        FROM b_songs_full
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
        """
        CREATE OR REPLACE TEMP TABLE b_albums_full AS
        SELECT album_id, arg_max(album, (enriched::INTEGER, last_seen_at)) AS album,
               max(last_seen_at) FILTER (WHERE enriched) AS enriched_at,
               min(first_seen_at) AS first_seen_at, max(last_seen_at) AS last_seen_at
        FROM album_partials GROUP BY album_id
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
               enriched_at, first_seen_at, last_seen_at
        FROM b_albums_full
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
        """
        CREATE OR REPLACE TEMP TABLE b_artists AS
        WITH best AS (
            SELECT artist_id, arg_max(artist, (enriched::INTEGER, last_seen_at)) AS artist,
                   max(last_seen_at) FILTER (WHERE enriched) AS enriched_at,
                   min(first_seen_at) AS first_seen_at, max(last_seen_at) AS last_seen_at
            FROM artist_partials GROUP BY artist_id
        )
        SELECT artist_id, artist.name AS name, artist.uri AS uri, artist.external_urls.spotify AS url,
               CASE WHEN enriched_at IS NOT NULL THEN artist.genres END AS genres,
               CASE WHEN enriched_at IS NOT NULL THEN artist.followers.total END AS followers,
               CASE WHEN enriched_at IS NOT NULL THEN artist.popularity END AS popularity,
               CASE WHEN enriched_at IS NOT NULL THEN artist.images[1].url END AS image_url,
               enriched_at, first_seen_at, last_seen_at
        FROM best
        """
    )
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE b_playlists AS
        WITH headers AS (
            SELECT header, fetched_at FROM playlist_headers
            UNION ALL
            SELECT {_playlist_header("body")}, fetched_at FROM raw_playlist_checks WHERE body.id IS NOT NULL
        ),
        latest AS (
            SELECT header.id AS playlist_id, arg_max(header, fetched_at) AS h, max(fetched_at) AS extracted_at
            FROM headers GROUP BY header.id
        ),
        items AS (SELECT playlist_id, max(extracted_at) AS items_extracted_at
                  FROM (SELECT playlist_id, extracted_at FROM b_playlist_songs
                        UNION ALL SELECT playlist_id, extracted_at FROM e_playlist_songs) GROUP BY ALL)
        SELECT l.playlist_id, h.name AS name, h.description AS description, h.owner_id AS owner_id,
               h.owner_name AS owner_name, h.public AS public, h.collaborative AS collaborative,
               h.followers AS followers, h.snapshot_id AS snapshot_id, h.total_items AS total_items,
               h.url AS url, h.uri AS uri, h.image_url AS image_url, extracted_at, i.items_extracted_at
        FROM latest l LEFT JOIN items i USING (playlist_id)
        """
    )
    con.execute(f"CREATE OR REPLACE TEMP TABLE b_song_popularity AS {PARTIALS['popularity_partials']}")
