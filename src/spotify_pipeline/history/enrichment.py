"""Which listened songs `run` looks up on `/tracks`: those whose album or artist is still unknown (a song known
only from listening history), most-played first, so a request budget per run goes where it matters most."""

from __future__ import annotations

from ..tables.catalog import Catalog


def tracks_to_enrich(catalog: Catalog) -> list[str]:
    """Song IDs in `listens` whose `songs` row has no album or no artist, by plays (descending), then ID."""
    from ..transform.connection import connect, register_table, spill_parent

    names = set(catalog.table_names())
    if not {"listens", "songs"} <= names:
        return []
    con = connect(remote=catalog.remote, spill_under=spill_parent(catalog))
    try:
        register_table(con, catalog, "listens", "l_listens")
        register_table(con, catalog, "songs", "l_songs")
        rows = con.execute(
            """SELECT l.song_id FROM l_listens l JOIN l_songs s ON s.song_id = l.song_id
               WHERE s.album_id IS NULL OR s.artist_id IS NULL
               GROUP BY l.song_id ORDER BY count(*) DESC, l.song_id"""
        ).fetchall()
    finally:
        con.close()
    return [str(r[0]) for r in rows]
