"""The recommendation model: item-item co-occurrence, built set-based in DuckDB, and ranking with it.

Inputs are two relations in a DuckDB connection:

- `members(playlist_id, song_id, position)`: playlist memberships (`playlist_songs`' tracks);
- `plays(user_id, played_at, song_id)`: listening events (`listens`' tracks), optional.

The model is two relations:

- `rec_neighbors(song_id, neighbor_id, source, score, together)`: for each song its `neighbors` best
  neighbours per source. `source = 'playlists'`: songs at most `window` positions apart in a playlist;
  `together` = the playlists where that happens; `score = together / (df(song)^(1-alpha) * df(neighbor)^alpha)`
  with df = the playlists holding a song (an IDF-style weight: a song that is everywhere says little).
  `source = 'listens'`: `neighbor_id` played right after `song_id` (same user, within `session_gap` of the
  previous play, i.e. in one listening session); `together` = how often; scored the same way with play
  counts, times `listen_weight`.
- `rec_popularity(song_id, playlists)`: the most widespread songs, for filling and as the baseline.

The window bounds the cost: pairs grow with playlist length times `window`, not with the square of the
length, so one 10,000-track playlist costs 100x, not 10,000x, a 100-track one.

Ranking (`rank`) is one query for any number of targets: the seeds' neighbours summed per candidate, the
target's own songs excluded, then popular songs to fill up to `n`; each result keeps the seed that
contributed most (the reason).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import duckdb
import pyarrow as pa


@dataclass(frozen=True)
class ModelParams:
    """How the model is built; recorded with it."""

    window: int = 50  # songs at most this many positions apart in a playlist count as together
    neighbors: int = 100  # kept per song and source
    alpha: float = 0.25  # 0.5 = cosine; higher penalises popular neighbours more (0.25 measured best)
    session_gap_minutes: int = 30
    listen_weight: float = 1.0
    popular: int = 1000  # songs kept in rec_popularity

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def build(
    con: duckdb.DuckDBPyConnection, params: ModelParams, *, members: str = "members", plays: str | None = None
) -> dict[str, int]:
    """Create `rec_neighbors` and `rec_popularity` from the relation `members` (and `plays`, when given: the
    names are ours, never user input). Returns row counts."""
    p = params
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE rec_m AS
        SELECT playlist_id, song_id, min(position) AS position
        FROM {members} WHERE song_id IS NOT NULL AND playlist_id IS NOT NULL GROUP BY playlist_id, song_id
        """
    )
    con.execute(
        """
        CREATE OR REPLACE TEMP TABLE rec_songs AS
        SELECT song_id, (row_number() OVER (ORDER BY song_id))::INTEGER AS s, df
        FROM (SELECT song_id, count(*)::INTEGER AS df FROM rec_m GROUP BY song_id)
        """
    )
    con.execute(
        """
        CREATE OR REPLACE TEMP TABLE rec_mi AS
        SELECT (dense_rank() OVER (ORDER BY m.playlist_id))::INTEGER AS p,
               (row_number() OVER (PARTITION BY m.playlist_id ORDER BY m.position, m.song_id))::INTEGER AS r,
               s.s
        FROM rec_m m JOIN rec_songs s USING (song_id)
        """
    )
    # Each unordered pair once (b after a, at most `window` positions later), then both directions.
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE rec_pairs AS
        WITH forward AS (
            SELECT a.s AS a, b.s AS b
            FROM rec_mi a, range(1, {int(p.window)} + 1) d(k)
            JOIN rec_mi b ON b.p = a.p AND b.r = a.r + d.k
        ), both_ways AS (SELECT a, b FROM forward UNION ALL SELECT b AS a, a AS b FROM forward)
        SELECT a, b, count(*)::INTEGER AS together FROM both_ways GROUP BY a, b
        """
    )
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE rec_neighbors AS
        SELECT sa.song_id, sb.song_id AS neighbor_id, 'playlists' AS source,
               (x.together / (pow(sa.df, 1 - {float(p.alpha)}) * pow(sb.df, {float(p.alpha)})))::DOUBLE AS score,
               x.together
        FROM rec_pairs x JOIN rec_songs sa ON sa.s = x.a JOIN rec_songs sb ON sb.s = x.b
        QUALIFY row_number() OVER (PARTITION BY x.a ORDER BY score DESC, x.b) <= {int(p.neighbors)}
        """
    )
    con.execute("DROP TABLE rec_pairs")
    con.execute("DROP TABLE rec_mi")
    if plays:
        con.execute(
            f"""
            INSERT INTO rec_neighbors
            WITH ordered AS (
                SELECT user_id, song_id, played_at,
                       lag(song_id) OVER w AS previous, lag(played_at) OVER w AS previous_at
                FROM {plays} WHERE song_id IS NOT NULL AND played_at IS NOT NULL
                WINDOW w AS (PARTITION BY user_id ORDER BY played_at)
            ), counts AS (SELECT song_id, count(*) AS n FROM {plays} WHERE song_id IS NOT NULL GROUP BY song_id),
            after AS (
                SELECT previous AS song_id, song_id AS neighbor_id, count(*)::INTEGER AS together
                FROM ordered
                WHERE previous IS NOT NULL AND previous <> song_id
                  AND played_at - previous_at <= INTERVAL {int(p.session_gap_minutes)} MINUTE
                GROUP BY ALL
            )
            SELECT a.song_id, a.neighbor_id, 'listens',
                   ({float(p.listen_weight)} * a.together
                    / (pow(ca.n, 1 - {float(p.alpha)}) * pow(cb.n, {float(p.alpha)})))::DOUBLE AS score,
                   a.together
            FROM after a JOIN counts ca ON ca.song_id = a.song_id JOIN counts cb ON cb.song_id = a.neighbor_id
            QUALIFY row_number() OVER (PARTITION BY a.song_id ORDER BY score DESC, a.neighbor_id)
                    <= {int(p.neighbors)}
            """
        )
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE rec_popularity AS
        SELECT song_id, df::BIGINT AS playlists FROM rec_songs ORDER BY df DESC, song_id LIMIT {int(p.popular)}
        """
    )
    con.execute("DROP TABLE rec_m")
    songs = con.execute("SELECT count(*) FROM rec_songs").fetchall()[0][0]
    con.execute("DROP TABLE rec_songs")
    rows = con.execute("SELECT count(*) FROM rec_neighbors").fetchall()[0][0]
    return {"songs": int(songs), "neighbors": int(rows)}


RANKED_SCHEMA = pa.schema(
    [
        ("target", pa.string()),
        ("rank", pa.int32()),
        ("song_id", pa.string()),
        ("score", pa.float64()),
        ("source", pa.string()),
        ("because_of", pa.string()),
        ("together", pa.int64()),
    ]
)


def rank(
    con: duckdb.DuckDBPyConnection,
    seeds: pa.Table,
    exclude: pa.Table,
    n: int,
    *,
    neighbors: str = "rec_neighbors",
    popularity: str = "rec_popularity",
) -> pa.Table:
    """Up to `n` songs per target. `seeds` and `exclude` have columns (target, song_id); every target of
    `exclude` gets a list (a target with no seeds gets popular songs). `neighbors` may be any relation
    with rec_neighbors' columns (e.g. none at all, for the popularity baseline)."""
    con.register("rec_q_seeds", seeds.select(["target", "song_id"]))
    con.register("rec_q_exclude", exclude.select(["target", "song_id"]))
    try:
        widest = con.execute("SELECT coalesce(max(c), 0) FROM (SELECT count(*) c FROM rec_q_exclude GROUP BY target)")
        fill = int(n) + int(widest.fetchall()[0][0])
        return (
            con.sql(
                f"""
            WITH candidates AS (
                SELECT q.target, x.neighbor_id AS song_id, x.song_id AS seed, x.source, x.score, x.together
                FROM rec_q_seeds q JOIN {neighbors} x ON x.song_id = q.song_id
            ), scored AS (
                -- rounded, and ties broken by seed: parallel float sums differ in the last bits
                SELECT target, song_id, round(sum(score), 9) AS score,
                       first(seed ORDER BY score DESC, seed, source) AS because_of,
                       first(source ORDER BY score DESC, seed, source) AS source,
                       first(together ORDER BY score DESC, seed, source)::BIGINT AS together
                FROM candidates GROUP BY target, song_id
            ), popular AS (
                SELECT t.target, p.song_id, 0.0::DOUBLE AS score, NULL::VARCHAR AS because_of,
                       'popularity' AS source, p.playlists::BIGINT AS together
                FROM (SELECT DISTINCT target FROM rec_q_exclude) t
                CROSS JOIN (SELECT * FROM {popularity} ORDER BY playlists DESC, song_id LIMIT {fill}) p
            ), pool AS (
                SELECT *, 0 AS tier FROM scored
                UNION ALL
                SELECT *, 1 AS tier FROM popular
                WHERE NOT EXISTS (
                    SELECT 1 FROM scored s WHERE s.target = popular.target AND s.song_id = popular.song_id
                )
            )
            SELECT target, (row_number() OVER w)::INTEGER AS rank, song_id, score, source, because_of, together
            FROM pool
            WHERE NOT EXISTS (SELECT 1 FROM rec_q_exclude e WHERE e.target = pool.target AND e.song_id = pool.song_id)
            WINDOW w AS (PARTITION BY target ORDER BY tier, score DESC, together DESC, song_id)
            QUALIFY rank <= {int(n)}
            ORDER BY target, rank
            """
            )
            .to_arrow_table()
            .cast(RANKED_SCHEMA)
        )
    finally:
        con.unregister("rec_q_seeds")
        con.unregister("rec_q_exclude")
