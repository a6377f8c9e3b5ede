"""The step `build_user_tables`: the batch relations of the user sources (liked songs, recently played, top)."""

from __future__ import annotations

import duckdb

from .relations import step


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
