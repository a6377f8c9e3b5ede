"""Playlist positions: each batch of playlist and item-page files parsed once into narrow position rows and
playlist headers, its track objects folded into the partials; and complete extractions whose positions are not
one whole version of the playlist set aside.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import duckdb

from ..tables.files import sql_paths
from .partials import accumulate, add_track_observations
from .raw import CURRENT_PAGE, CURRENT_PLAYLIST, RawFile, raw_relation, uris

if TYPE_CHECKING:
    from .quarantine import Quarantine


def playlist_header(body: str) -> str:
    """The playlist fields the tables keep, as one small struct (the embedded item page is left out)."""
    return f"""{{'id': {body}.id, 'name': {body}.name, 'description': {body}.description,
        'owner_id': {body}.owner.id, 'owner_name': {body}.owner.display_name, 'public': {body}.public,
        'collaborative': {body}.collaborative, 'followers': {body}.followers.total,
        'snapshot_id': {body}.snapshot_id, 'total_items': coalesce({body}.items.total, {body}.tracks.total),
        'url': {body}.external_urls.spotify, 'uri': {body}.uri, 'image_url': {body}.images[1].url}}"""


def _positions_sql(playlists: str, pages: str, current: bool, files: Sequence[str]) -> str:
    """One pass over parsed pages: every position observed (embedded first pages and item pages), each
    playlist header riding on its page's first row (an empty page still yields that one row). Nothing
    page-sized is materialised: DuckDB streams the parsed records straight into position rows.
    `current`: the pages were read in the current shape (`CURRENT_PLAYLIST`, `CURRENT_PAGE`), and
    `needs_deprecated` marks the positions that need the file read again in the shape taking either.
    What rides on every row is kept narrow (a 1M-item rebuild stores ~1M of them): the file as its
    1-based index in `files`, not its path; the header as a list of one on the page's first row and NULL
    elsewhere (a NULL list stores no struct, a NULL struct one empty slot per field)."""
    if current:
        page, page_old = "body.items", "body.items IS NULL AND body.tracks IS NOT NULL"
        obj, obj_old = "it.item", "it.item IS NULL AND it.track IS NOT NULL"
    else:
        page, page_old = "coalesce(body.items, body.tracks)", "FALSE"
        obj, obj_old = "coalesce(it.item, it.track)", "FALSE"
    paths = sql_paths(files)  # looked up once per page, not per position
    return f"""
        WITH pages AS (
            SELECT run_id, fetched_at, meta.playlist_id AS playlist_id, {playlist_header("body")} AS header,
                   {page} AS page, {page_old} AS page_old, list_position({paths}, filename)::INTEGER AS file
            FROM {playlists}
            UNION ALL
            SELECT run_id, fetched_at, meta.playlist_id, NULL, body, FALSE, list_position({paths}, filename)
            FROM {pages}
        ),
        rows AS (
            SELECT run_id, fetched_at, playlist_id, header, page."offset" AS page_offset, page_old, file,
                   coalesce(len(page.items), 0) > 0 AS has_items,
                   unnest(CASE WHEN len(page.items) > 0 THEN page.items ELSE [NULL] END) AS it,
                   generate_subscripts(CASE WHEN len(page.items) > 0 THEN page.items ELSE [NULL] END, 1) AS idx
            FROM pages
        ),
        objs AS (SELECT *, {obj} AS obj, page_old OR coalesce({obj_old}, FALSE) AS needs_deprecated FROM rows)
        SELECT o.run_id, o.fetched_at, o.playlist_id, c.snapshot_id,
               CASE WHEN o.idx = 1 AND o.header IS NOT NULL THEN [o.header] END AS header,
               o.has_items AND c.run_id IS NOT NULL AS complete,
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
               o.file, o.needs_deprecated, o.has_items
        FROM objs o LEFT JOIN complete c USING (run_id, playlist_id)
        """


def set_aside_inconsistent_positions(con: duckdb.DuckDBPyConnection, quarantine: Quarantine) -> list[str]:
    """A complete extraction whose positions are not 0..n-1 with n the items the extractor read (a page with
    a wrong `offset`, a page missing) is not one version of the playlist: it is set aside as a whole, so the
    playlist keeps its previous positions instead of failing the quality gate for every playlist, run after
    run (an unchanged playlist is not read again). Values of the right type but no meaning reach here.
    Returns the extractions (`run_id/playlist_id`) that hold some position more than once (a page stored
    twice), the only ones `b_playlist_songs` must de-duplicate: counted here, in the same grouping."""
    found = con.execute(
        """SELECT c.run_id, c.playlist_id, c.manifest, c.items, count(DISTINCT i.position) AS n,
                  min(i.position) AS lo, max(i.position) AS hi,
                  (n > 0 AND (lo <> 0 OR hi <> n - 1)) OR (c.items IS NOT NULL AND n <> c.items) AS bad,
                  count(i.position) > n AS repeated
           FROM complete c LEFT JOIN item_rows i USING (run_id, playlist_id)
           GROUP BY c.run_id, c.playlist_id, c.manifest, c.items
           HAVING bad OR repeated
           ORDER BY 1, 2"""
    ).fetchall()
    bad = [row[:7] for row in found if row[7]]
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
    return [f"{run}/{playlist}" for run, playlist, *_, repeated in found if repeated]


def read_playlist_batch(con: duckdb.DuckDBPyConnection, batch: list[RawFile], first: bool) -> None:
    """Parse one batch of playlist and item-page files once; keep narrow position rows and playlist headers,
    fold the nested track objects into the partials."""
    playlist_files, page_files = uris(batch, "playlists"), uris(batch, "playlist_items")
    files = playlist_files + page_files
    con.execute(
        "CREATE OR REPLACE TEMP TABLE batch_positions AS "
        + _positions_sql(
            raw_relation("playlists", playlist_files, CURRENT_PLAYLIST, filename=True),
            raw_relation("playlist_items", page_files, CURRENT_PAGE, filename=True),
            current=True,
            files=files,
        )
    )
    # Files in which some response has only the deprecated `tracks` / `track` are read again, whole, in
    # the shape that takes either (a file may mix responses from before and after the rename).
    numbers = [n for (n,) in con.execute("SELECT DISTINCT file FROM batch_positions WHERE needs_deprecated").fetchall()]
    old = {files[n - 1] for n in numbers}
    if old:
        con.execute("DELETE FROM batch_positions WHERE list_contains(?, file)", [sorted(numbers)])
        con.execute(
            "INSERT INTO batch_positions "
            + _positions_sql(
                raw_relation("playlists", [f for f in playlist_files if f in old], filename=True),
                raw_relation("playlist_items", [f for f in page_files if f in old], filename=True),
                current=False,
                files=files,
            )
        )
    accumulate(
        con,
        "playlist_headers",
        "SELECT header[1] AS header, fetched_at, run_id FROM batch_positions WHERE header[1].id IS NOT NULL",
        first,
    )
    accumulate(  # pages without items: how an emptied playlist's complete extraction is seen, and when
        con,
        "empty_pages",
        "SELECT run_id, playlist_id, fetched_at FROM batch_positions WHERE NOT has_items",
        first,
    )
    accumulate(
        con,
        "item_rows",
        """SELECT run_id, fetched_at, playlist_id, snapshot_id, position, added_at, added_by, item_type,
                  CASE WHEN item_type = 'track' THEN obj.id END AS song_id, obj.uri AS item_uri,
                  obj.name AS item_name
           FROM batch_positions WHERE complete""",
        first,
    )
    add_track_observations(
        con,
        "SELECT rowid AS obs_id, obj.id AS song_id, obj, fetched_at, added_at FROM batch_positions"
        " WHERE complete AND item_type = 'track'",
        first,
    )
    con.execute("DROP VIEW track_obs")
    con.execute("DROP VIEW album_obs")
    con.execute("DROP TABLE batch_positions")
