"""Listening events -> `listen_events` (every play record seen) -> `listens` (one row per listen), in SQL.

`listen_events` holds each play as each source recorded it: the export files (extended, legacy, account
data) and the API's recently played, keyed exactly (`listen_id`: user, source format, end time, item,
ms played), so the same record seen in two files or two imports is one row. `listens` is derived from
all of them by every transform (so importing in any order, or rebuilding, gives the same rows):

1. detailed export records (`extended`, `legacy`; `ts` in seconds): one listen per (user, item, ts);
   no tolerance, since real exports hold distinct plays of one track seconds apart (skips, replays).
   The extended record wins over the legacy one.
2. an API play (`played_at`) is the same listen as a detailed record of the same user and item URI
   whose end, or start (end - ms_played), is within `API_TOLERANCE_S` seconds: Spotify documents
   `played_at` as "when the track was played" and has been seen to send either.
3. an account-data record (`endTime` in minutes, no URI) is the same listen as a listen from 1 or 2 of
   the same user, kind, track/episode name and artist/show name whose end time, truncated to the minute,
   is within one minute of `endTime`.
The richer record is kept: extended, then legacy, then API, then account data.

The temp relations read and built here (`raw_recently_played`, `b_listen_events`, `b_songs`, ...) are
declared in transform/relations.py; the runner checks them around each step.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import duckdb

from ..tables.files import sql_paths

API_TOLERANCE_S = 5
ACCOUNT_TOLERANCE_MIN = 1

LISTEN_COLUMNS = (
    "listen_id, user_id, ended_at, ms_played, item_type, song_id, item_uri, track_name, artist_name, album_name, "
    "reason_start, reason_end, shuffle, skipped, offline, incognito, platform, country, source, source_format, "
    "imported_at"
)

_TEXT = (
    "platform conn_country master_metadata_track_name master_metadata_album_artist_name "
    "master_metadata_album_album_name spotify_track_uri episode_name episode_show_name spotify_episode_uri "
    "audiobook_title audiobook_uri audiobook_chapter_uri audiobook_chapter_title reason_start reason_end "
    "endTime artistName trackName podcastName episodeName ts"
).split()
# The fields of an export element the tables read, with their SQL types (the typed `body` of a play record).
BODY_TYPES: dict[str, str] = {
    **dict.fromkeys(_TEXT, "VARCHAR"),
    "ms_played": "BIGINT",
    "msPlayed": "BIGINT",
    **dict.fromkeys(("shuffle", "skipped", "offline", "incognito_mode"), "BOOLEAN"),
}
_BODY = "STRUCT(" + ", ".join(f'"{f}" {t}' for f, t in BODY_TYPES.items()) + ")"
_META = 'STRUCT("run_id" VARCHAR, "fetched_at" VARCHAR, "user_id" VARCHAR, "file" VARCHAR, "format" VARCHAR)'


def _export_rows(uris: Sequence[str]) -> str:
    """`(meta, body)` of every play record in the raw part files `uris`: Parquet parts (history/raw_parts.py,
    every import since they exist) and gzipped NDJSON parts (imports of lakes written before)."""
    selects = [f"SELECT NULL::{_META} AS meta, NULL::{_BODY} AS body LIMIT 0"]
    ndjson = [u for u in uris if not u.endswith(".parquet")]
    parquet = [u for u in uris if u.endswith(".parquet")]
    if ndjson:
        files = sql_paths(ndjson)
        selects.append(
            f"SELECT meta, body FROM read_json({files}, format='newline_delimited', compression='gzip',"
            f" columns={{'meta': '{_META}', 'body': '{_BODY}'}})"
        )
    if parquet:
        files = sql_paths(parquet)
        body = "{" + ", ".join(f"'{f}': body.\"{f}\"" for f in BODY_TYPES) + "}"
        selects.append(f"SELECT meta::{_META} AS meta, {body}::{_BODY} AS body FROM read_parquet({files})")
    return "(" + " UNION ALL ".join(f"({s})" for s in selects) + ")"


def _listen_id(fmt: str) -> str:
    item = "coalesce(item_uri, item_type || ':' || coalesce(artist_name, '') || ':' || coalesce(track_name, ''))"
    return f"md5(concat_ws('|', user_id, {fmt}, epoch_ms(ended_at)::VARCHAR, {item}, coalesce(ms_played::VARCHAR, '')))"


@contextmanager
def insertion_order(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """Statements run inside keep the order of their inputs (rows inserted, rows returned), whatever the
    connection's `preserve_insertion_order` (the transform's is false: connection.py)."""
    before = con.execute("SELECT current_setting('preserve_insertion_order')").fetchall()[0][0]
    con.execute("SET preserve_insertion_order = true")
    try:
        yield
    finally:
        con.execute(f"SET preserve_insertion_order = {'true' if before else 'false'}")


def build_listen_events(con: duckdb.DuckDBPyConnection, export_uris: Sequence[str]) -> None:
    """`b_listen_events` from the batch's `history_export` part files and its `raw_recently_played` view."""
    con.execute(
        f"""
        CREATE OR REPLACE TEMP VIEW listen_rows AS
        SELECT meta.user_id AS user_id,
               CASE WHEN meta.format LIKE 'account%'
                    THEN strptime(body.endTime, '%Y-%m-%d %H:%M')::TIMESTAMP AT TIME ZONE 'UTC'
                    ELSE body.ts::TIMESTAMPTZ END AS ended_at,
               coalesce(body.ms_played, body.msPlayed) AS ms_played,
               CASE WHEN meta.format = 'account_music' THEN 'track'
                    WHEN meta.format = 'account_podcast' THEN 'episode'
                    WHEN body.spotify_track_uri IS NOT NULL THEN 'track'
                    WHEN body.spotify_episode_uri IS NOT NULL THEN 'episode'
                    WHEN coalesce(body.audiobook_chapter_uri, body.audiobook_uri) IS NOT NULL THEN 'audiobook'
                    ELSE 'unknown' END AS item_type,
               CASE WHEN body.spotify_track_uri LIKE 'spotify:track:%'
                    THEN split_part(body.spotify_track_uri, ':', 3) END AS song_id,
               coalesce(body.spotify_track_uri, body.spotify_episode_uri, body.audiobook_chapter_uri,
                        body.audiobook_uri) AS item_uri,
               coalesce(body.master_metadata_track_name, body.episode_name, body.audiobook_chapter_title,
                        body.trackName, body.episodeName) AS track_name,
               coalesce(body.master_metadata_album_artist_name, body.episode_show_name, body.artistName,
                        body.podcastName) AS artist_name,
               coalesce(body.master_metadata_album_album_name, body.audiobook_title) AS album_name,
               body.reason_start AS reason_start, body.reason_end AS reason_end, body.shuffle AS shuffle,
               body.skipped AS skipped, body.offline AS offline, body.incognito_mode AS incognito,
               body.platform AS platform, body.conn_country AS country, 'export' AS source,
               CASE WHEN meta.format LIKE 'account%' THEN 'account' ELSE meta.format END AS source_format,
               meta.fetched_at::TIMESTAMPTZ AS imported_at
        FROM {_export_rows(export_uris)}
        UNION ALL
        SELECT meta.user_id, p.played_at::TIMESTAMPTZ, NULL::BIGINT, coalesce(p.track.type, 'track'),
               CASE WHEN coalesce(p.track.type, 'track') = 'track' THEN p.track.id END, p.track.uri, p.track.name,
               p.track.artists[1].name, p.track.album.name, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
               'api', 'api', fetched_at
        FROM (SELECT meta, fetched_at, unnest(body.items) AS p FROM raw_recently_played)
        WHERE p.played_at IS NOT NULL AND meta.user_id IS NOT NULL
        """
    )
    # Rows and keys in one pass (`listen_rows` is a view); then the same record seen twice in the batch (two
    # files, two imports, two polls) is kept once, the first imported. Most batches have no such repeat, and
    # the window over every wide row was most of this step (3.3 of 5.3 CPU s at 1M plays): it runs only
    # over the rows whose key repeats, found by the keys' 64-bit hashes (grouping 1M integers instead of 1M
    # 32-character strings; a collision only adds candidates, the window keeps one row per exact key).
    # `ts` is cast, not parsed with strptime: every part holds it as the strict check let it in
    # (history/parse.py TS_FORMAT, 2024-01-31T23:59:07Z), which the cast reads as the same instant, cheaper.
    # In the parts' order (each file's elements in order, the files in the download's order: Spotify's are
    # by time), not DuckDB's: when that is already the table's order, publishing streams the rows as they
    # are instead of sorting 1M wide rows again (transform/publish.py `_in_order`).
    with insertion_order(con):
        con.execute(
            f"""
            CREATE OR REPLACE TEMP TABLE b_listen_events AS
            SELECT {_listen_id("source_format")} AS listen_id, * EXCLUDE (imported_at), imported_at FROM listen_rows
            """
        )
    con.execute("DROP VIEW listen_rows")
    con.execute(
        """
        DELETE FROM b_listen_events WHERE rowid IN (
            SELECT rowid FROM b_listen_events
            WHERE hash(listen_id) IN (SELECT hash(listen_id) FROM b_listen_events GROUP BY ALL HAVING count(*) > 1)
            QUALIFY row_number() OVER (PARTITION BY listen_id ORDER BY imported_at) > 1)
        """
    )


# The `listens` rule (a Derived merge): recomputed from every event by each transform; see the docstring.
# Written as "every event but those another record of the same listen outranks" (`dropped`): the rules work
# on narrow columns, detailed records are ranked only where their (user, item, end) repeats, and the wide
# rows are copied once. Ranking every wide row in windows cost 4.3-5.4 CPU s at 1M plays, this 1.9
# (docs/BENCHMARKS.md, Round 3); tests/history/test_listens_rule.py checks it against that plain form.
# Each match starts from its few rows (Round 5): the repeated keys joined to their events, the API plays
# joined to the detailed records, the events of the (user, track name) pairs account data has; only those
# are then tested against `outranked`. Filtering all 1M events first ("detailed", "exact") and then looking
# for an API or account match cost ~1 CPU s per match at 1M plays with no API or account record at all.
# 1M extended plays: 1.9-2.3 -> 1.1-1.3 CPU s (the wide copy alone is 0.7).
_DROPPED_CTES = f"""
WITH ev AS NOT MATERIALIZED (
    SELECT listen_id, user_id, ended_at, ms_played, item_type, item_uri, track_name, artist_name, source_format,
           coalesce(item_uri, item_type || ':' || coalesce(artist_name, '') || ':' || coalesce(track_name, ''))
               AS item_key
    FROM staged_listen_events
),
repeated AS (
    SELECT user_id, item_key, ended_at FROM ev WHERE source_format IN ('extended', 'legacy')
    GROUP BY ALL HAVING count(*) > 1
),
outranked AS (
    SELECT listen_id FROM (
        SELECT e.* FROM repeated r JOIN ev e
            ON r.user_id = e.user_id AND r.item_key = e.item_key AND r.ended_at = e.ended_at
        WHERE e.source_format IN ('extended', 'legacy'))
    QUALIFY row_number() OVER (PARTITION BY user_id, item_key, ended_at
                               ORDER BY source_format = 'extended' DESC, ms_played DESC, listen_id) > 1
),
api AS (SELECT * FROM ev WHERE source_format = 'api'),
api_matched AS (
    SELECT DISTINCT a.listen_id FROM api a JOIN ev d ON d.user_id = a.user_id AND d.item_uri = a.item_uri
    WHERE d.source_format IN ('extended', 'legacy')
      AND (abs(epoch(a.ended_at) - epoch(d.ended_at)) <= {API_TOLERANCE_S}
           OR abs(epoch(a.ended_at) - (epoch(d.ended_at) - d.ms_played / 1000.0)) <= {API_TOLERANCE_S})
      AND d.listen_id NOT IN (SELECT listen_id FROM outranked)
),
account AS (SELECT * FROM ev WHERE source_format = 'account'),
exact_named AS (
    SELECT e.* FROM ev e SEMI JOIN account c ON c.user_id = e.user_id AND c.track_name = e.track_name
    WHERE e.source_format IN ('extended', 'legacy', 'api')
      AND e.listen_id NOT IN (SELECT listen_id FROM outranked)
      AND e.listen_id NOT IN (SELECT listen_id FROM api_matched)
),
minutes AS (
    SELECT user_id, item_type, track_name, artist_name,
           date_trunc('minute', ended_at) + shift * INTERVAL 1 MINUTE AS minute
    FROM exact_named, (SELECT unnest(range(-{ACCOUNT_TOLERANCE_MIN}, {ACCOUNT_TOLERANCE_MIN} + 1)) AS shift)
),
matched AS (
    SELECT DISTINCT c.listen_id FROM account c JOIN minutes m
      ON m.user_id = c.user_id AND m.item_type = c.item_type AND m.track_name = c.track_name
     AND m.artist_name IS NOT DISTINCT FROM c.artist_name AND m.minute = c.ended_at
),
dropped AS (
    SELECT listen_id FROM outranked UNION ALL SELECT listen_id FROM api_matched UNION ALL SELECT listen_id FROM matched
)"""
# The `listen_id`s of the events the rule drops (narrow: no wide row is copied to find them).
DROPPED_SQL = f"{_DROPPED_CTES}\nSELECT listen_id FROM dropped"
LISTENS_SQL = f"""{_DROPPED_CTES}
SELECT {LISTEN_COLUMNS}
FROM staged_listen_events WHERE listen_id NOT IN (SELECT listen_id FROM dropped)
"""


def stage_listens(con: duckdb.DuckDBPyConnection) -> None:
    """`staged_listens` by the rule (`LISTENS_SQL`), its wide rows copied only when the rule drops some event.

    The events dropped are found first, on narrow columns (`listens_dropped`, scratch). When there are none
    (a first import of one download: every play its own listen) `listens` is every event, so
    `staged_listens` is a view of `staged_listen_events` and no wide row is copied (0.7 CPU s at 1M plays);
    publishing then finds the two tables' rows equal and writes their files once (publish.py `TWINS`).
    Otherwise the events but those, copied: the rows `LISTENS_SQL` gives (tests/history/test_listens_rule.py)."""
    con.execute(f"CREATE OR REPLACE TEMP TABLE listens_dropped AS {DROPPED_SQL}")
    if con.execute("SELECT count(*) FROM listens_dropped").fetchall()[0][0]:
        con.execute(
            f"CREATE TEMP TABLE staged_listens AS SELECT {LISTEN_COLUMNS} FROM staged_listen_events "
            "WHERE listen_id NOT IN (SELECT listen_id FROM listens_dropped)"
        )
    else:
        con.execute(f"CREATE TEMP VIEW staged_listens AS SELECT {LISTEN_COLUMNS} FROM staged_listen_events")
        con.execute(f"COMMENT ON VIEW staged_listens IS '{_EVERY_EVENT}'")  # read by `listens_are_events`
    con.execute("DROP TABLE listens_dropped")


_EVERY_EVENT = "every staged listen event"


def listens_are_events(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether `staged_listens` is `stage_listens`' view of every staged event (no event dropped): then a
    check of `listens` counts what the same check of `listen_events` counts (quality/checks.py `same_rows`),
    and need not read 1M rows again (~0.2 CPU s at 1M plays). Its view only: anything else (a table, a view
    of the old rows, one a test or hook put there) has no such comment."""
    found = con.execute(
        "SELECT comment FROM duckdb_views() WHERE view_name = 'staged_listens' AND temporary"
    ).fetchall()
    return bool(found) and found[0][0] == _EVERY_EVENT


def listens_changed(column: str) -> str:
    """A query of the `column` values of the `listens` rows a transform changed, for publishing only those
    (publish.py `_changed_keys`). A `listens` row is a copy of its `listen_events` row, and an event whose
    `listen_id` is not in the batch is unchanged (the keyed merge keeps it as it was), so rows are compared in
    full only where their `listen_id` is in `b_listen_events`; elsewhere a listen added or dropped by the rule
    is found on `listen_id` alone. Comparing every wide row both ways (`EXCEPT`, what a derived table gets)
    took ~4.8 CPU s on a 1M lake for a batch of 2,000 new plays, this ~0.5 (docs/BENCHMARKS.md, Round 4)."""
    return f"""
    SELECT {column} FROM staged_listens ANTI JOIN old_listens USING (listen_id)
    UNION SELECT {column} FROM old_listens ANTI JOIN staged_listens USING (listen_id)
    UNION SELECT {column} FROM (
        SELECT * FROM staged_listens SEMI JOIN b_listen_events USING (listen_id)
        EXCEPT SELECT * FROM old_listens SEMI JOIN b_listen_events USING (listen_id))
    """


# `last_seen_at` of a song known only from listening history: older than any observation from the API, so the
# songs merge (newer observation wins) always lets a playlist, library or `/tracks` observation replace it.
LISTENED_ONLY_SEEN_AT = "TIMESTAMPTZ '1970-01-01 00:00:00+00'"


def add_listened_songs(con: duckdb.DuckDBPyConnection) -> int:
    """Add to `b_songs` a minimal row for each track the batch's listen events name that neither the batch nor
    `old_songs` has: its ID, URI and URL, and the newest name the history gives it; album, artist and duration
    stay NULL until `/tracks` fills them in (extract/extractor.py). Returns how many rows were added."""
    before = con.execute("SELECT count(*) FROM b_songs").fetchall()[0][0]
    con.execute(
        f"""
        INSERT INTO b_songs BY NAME
        SELECT e.song_id, arg_max(e.track_name, e.ended_at) AS name, 'spotify:track:' || e.song_id AS uri,
               'https://open.spotify.com/track/' || e.song_id AS url, {LISTENED_ONLY_SEEN_AT} AS last_seen_at
        FROM b_listen_events e
        WHERE e.song_id IS NOT NULL
          AND NOT EXISTS (SELECT 1 FROM b_songs s WHERE s.song_id = e.song_id)
          AND NOT EXISTS (SELECT 1 FROM old_songs o WHERE o.song_id = e.song_id)
        GROUP BY e.song_id
        """
    )
    return int(con.execute("SELECT count(*) FROM b_songs").fetchall()[0][0]) - int(before)
