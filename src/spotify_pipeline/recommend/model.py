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
    neighbors: int = 50  # kept per song and source (100: +2 points of R-precision for 1 seed, 2x the rows)
    alpha: float = 0.25  # 0.5 = cosine; higher penalises popular neighbours more (0.25 measured best)
    session_gap_minutes: int = 30
    listen_weight: float = 1.0
    popular: int = 1000  # songs kept in rec_popularity
    min_df: int = 2  # songs in fewer playlists get no neighbours (see build)
    title_songs: int = 2000  # kept per title word (200: title-only at popularity level; 2000: 1.9x)

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def title_tokens(expr: str) -> str:
    """SQL for the words of a title (lower case, letters and digits): the same at build and query time."""
    return f"list_distinct(regexp_extract_all(lower(coalesce({expr}, '')), '[\\p{{L}}\\p{{N}}]+'))"


def build(
    con: duckdb.DuckDBPyConnection,
    params: ModelParams,
    *,
    members: str = "members",
    plays: str | None = None,
    titles: str | None = None,
) -> dict[str, int]:
    """Create `rec_neighbors` (a view over `rec_neighbors_i` and `rec_listen_neighbors`), `rec_title`,
    `rec_popularity` and `rec_song_stats` from the relation `members` (and `plays`, `titles(playlist_id,
    name)` when given: the names are ours, never user input). Returns row counts."""
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
        SELECT song_id, (row_number() OVER (ORDER BY song_id))::INTEGER AS s, df,
               pow(df, {a} - 1)::DOUBLE AS w_seed, pow(df, -{a})::DOUBLE AS w_neighbor
        FROM (SELECT song_id, count(*)::INTEGER AS df FROM rec_m GROUP BY song_id)
        """.replace("{a}", repr(float(p.alpha)))
    )
    # Songs in fewer than `min_df` playlists take no part in pairs: a song in one playlist only co-occurs
    # with that playlist's songs, which are never recommended back to it.
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE rec_mi AS
        SELECT (dense_rank() OVER (ORDER BY m.playlist_id))::INTEGER AS p,
               (row_number() OVER (PARTITION BY m.playlist_id ORDER BY m.position, m.song_id))::INTEGER AS r,
               s.s
        FROM rec_m m JOIN rec_songs s USING (song_id)
        WHERE s.df >= {int(p.min_df)}
        """
    )
    # Each unordered pair once (b after a, at most `window` positions later, found by a range join on the
    # playlist, 10x faster than probing each offset), keyed by one BIGINT, then both directions.
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE rec_pairs AS
        SELECT (least(a.s, b.s)::BIGINT << 32) | greatest(a.s, b.s)::BIGINT AS k, count(*)::INTEGER AS together
        FROM rec_mi a JOIN rec_mi b ON b.p = a.p AND b.r > a.r AND b.r <= a.r + {int(p.window)}
        WHERE a.s <> b.s
        GROUP BY k
        """
    )
    con.execute("DROP TABLE rec_mi")
    # The playlist neighbours stay in integer form (`rec_neighbors_i`, song numbers of rec_song_stats.s):
    # the model file stores them so, and `rec_neighbors` (a view) names them for ranking.
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE rec_neighbors_i AS
        WITH both_ways AS (
            SELECT (k >> 32)::INTEGER AS a, (k & 4294967295)::INTEGER AS b, together FROM rec_pairs
            UNION ALL
            SELECT (k & 4294967295)::INTEGER AS a, (k >> 32)::INTEGER AS b, together FROM rec_pairs
        )
        SELECT x.a, x.b, x.together * sa.w_seed * sb.w_neighbor AS score, x.together
        FROM both_ways x JOIN rec_songs sa ON sa.s = x.a JOIN rec_songs sb ON sb.s = x.b
        QUALIFY row_number() OVER (PARTITION BY x.a ORDER BY score DESC, x.b) <= {int(p.neighbors)}
        """
    )
    con.execute("DROP TABLE rec_pairs")
    con.execute(
        "CREATE OR REPLACE TEMP TABLE rec_listen_neighbors "
        "(song_id VARCHAR, neighbor_id VARCHAR, source VARCHAR, score DOUBLE, together INTEGER)"
    )
    if plays:
        con.execute(
            f"""
            INSERT INTO rec_listen_neighbors
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
    _build_titles(con, params, titles)
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE rec_popularity AS
        SELECT song_id, df::BIGINT AS playlists FROM rec_songs ORDER BY df DESC, song_id LIMIT {int(p.popular)}
        """
    )
    con.execute(
        """
        CREATE OR REPLACE TEMP TABLE rec_song_stats AS
        SELECT song_id, s, df::BIGINT AS playlists,
               (df / (SELECT count(DISTINCT playlist_id) FROM rec_m))::DOUBLE AS share
        FROM rec_songs
        """
    )
    con.execute(
        """
        CREATE OR REPLACE TEMP VIEW rec_neighbors AS
        SELECT sa.song_id, sb.song_id AS neighbor_id, 'playlists' AS source, x.score, x.together
        FROM rec_neighbors_i x JOIN rec_song_stats sa ON sa.s = x.a JOIN rec_song_stats sb ON sb.s = x.b
        UNION ALL
        SELECT song_id, neighbor_id, source, score, together FROM rec_listen_neighbors
        """
    )
    con.execute("DROP TABLE rec_m")
    songs = con.execute("SELECT count(*) FROM rec_songs").fetchall()[0][0]
    con.execute("DROP TABLE rec_songs")
    rows = con.execute(
        "SELECT (SELECT count(*) FROM rec_neighbors_i) + (SELECT count(*) FROM rec_listen_neighbors)"
    ).fetchall()[0][0]
    return {"songs": int(songs), "neighbors": int(rows)}


def _build_titles(con: duckdb.DuckDBPyConnection, params: ModelParams, titles: str | None) -> None:
    """`rec_title(token, song_id, score, together)`: for each title word in at least two playlists, the
    songs of the playlists named with it; `together` = how many of them hold the song (n), `score` =
    ln(1 + n / (TITLE_PRIOR * q)) with q = the word's share of all playlists: the word's evidence for the
    song in a naive Bayes ranking (see `rank`); the `title_songs` songs with most evidence per word."""
    if titles is None:
        con.execute(
            "CREATE OR REPLACE TEMP TABLE rec_title (token VARCHAR, song_id VARCHAR, score DOUBLE, together INTEGER)"
        )
        return
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE rec_title AS
        WITH named AS (
            SELECT DISTINCT playlist_id, unnest({title_tokens("name")}) AS token FROM {titles}
            WHERE playlist_id IN (SELECT playlist_id FROM rec_m)
        ), words AS (
            SELECT token, count(*) / (SELECT count(DISTINCT playlist_id) FROM rec_m) AS q
            FROM named GROUP BY token HAVING count(*) >= 2
        ), together AS (
            SELECT n.token, m.song_id, count(*)::INTEGER AS together
            FROM named n JOIN rec_m m USING (playlist_id) WHERE n.token IN (SELECT token FROM words)
            GROUP BY n.token, m.song_id
        )
        SELECT t.token, t.song_id, ln(1 + t.together / ({TITLE_PRIOR} * w.q))::DOUBLE AS score, t.together
        FROM together t JOIN words w USING (token) JOIN rec_songs s USING (song_id)
        -- kept: the songs this word alone would rank first (its naive Bayes score, see `rank`)
        QUALIFY row_number() OVER (
            PARTITION BY t.token
            ORDER BY ln(s.df) + ln((t.together + {TITLE_PRIOR} * w.q) / (s.df + {TITLE_PRIOR})) DESC, t.song_id
        ) <= {int(params.title_songs)}
        """
    )


TITLE_PRIOR = 5  # pseudo-playlists behind every word-song estimate (measured: 2-5 best, 20 worse)

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
    titles: pa.Table | None = None,
    title_index: str = "rec_title",
    song_stats: str = "rec_song_stats",
) -> pa.Table:
    """Up to `n` songs per target. `seeds` and `exclude` have columns (target, song_id); every target of
    `exclude` gets a list (a target with no seeds gets popular songs). `neighbors` may be any relation
    with rec_neighbors' columns (e.g. none at all, for the popularity baseline). `titles(target, token)`:
    the words of each target's name: after the seeds' neighbours come songs ranked by naive Bayes on those
    words (`rec_title`, `song_stats(song_id, playlists, share)`), then popular songs."""
    if titles is None:
        titles = pa.table({"target": pa.array([], pa.string()), "token": pa.array([], pa.string())})
    con.register("rec_q_seeds", seeds.select(["target", "song_id"]))
    con.register("rec_q_exclude", exclude.select(["target", "song_id"]))
    con.register("rec_q_titles", titles.select(["target", "token"]))
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
            ), words AS (  -- the target's title words the model knows
                SELECT q.target, q.token FROM rec_q_titles q
                WHERE q.token IN (SELECT token FROM {title_index}) GROUP BY ALL
            ), evidence AS (
                SELECT w.target, t.song_id, sum(t.score) AS score, max(t.together) AS together
                FROM words w JOIN {title_index} t ON t.token = w.token GROUP BY ALL
            ), named AS (
                -- naive Bayes: ln P(song) + sum over the words of ln(P(word | song) / P(word)), P(word | song)
                -- smoothed with TITLE_PRIOR pseudo-playlists; the popular songs compete with the evidence
                SELECT c.target, c.song_id,
                       round(ln(s.share) + k.words * ln({TITLE_PRIOR} / (s.playlists + {TITLE_PRIOR}))
                             + coalesce(e.score, 0), 9) AS score,
                       NULL::VARCHAR AS because_of, 'title' AS source, coalesce(e.together, 0)::BIGINT AS together
                FROM (
                    SELECT target, song_id FROM evidence
                    UNION SELECT p.target, p.song_id FROM popular p WHERE p.target IN (SELECT target FROM words)
                ) c
                JOIN (SELECT target, count(*) AS words FROM words GROUP BY target) k USING (target)
                JOIN {song_stats} s USING (song_id)
                LEFT JOIN evidence e USING (target, song_id)
            ), pool AS (
                SELECT * FROM (
                    SELECT *, 0 AS tier FROM scored
                    UNION ALL SELECT *, 1 AS tier FROM named
                    UNION ALL SELECT *, 2 AS tier FROM popular
                ) QUALIFY row_number() OVER (PARTITION BY target, song_id ORDER BY tier, score DESC) = 1
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
        con.unregister("rec_q_titles")
