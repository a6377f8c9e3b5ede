"""The step `build_changes`: what each complete extraction added to or removed from its playlist."""

from __future__ import annotations

import duckdb

from .relations import step


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
