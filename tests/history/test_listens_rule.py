"""The `listens` rule as written (history/listens.py: every event but those another record outranks, ranked
only where keys repeat) gives exactly the rows of its plain form (every wide row ranked in a window, the rule
as first written), on random events crowded enough that every case happens: the same detailed record in
two formats, replays seconds apart, API plays within and just outside the tolerance of an end or a start,
account-data records a minute either side, other users, items without a URI."""

from __future__ import annotations

import datetime as dt
import random

import duckdb
import pytest

from spotify_pipeline.history.listens import ACCOUNT_TOLERANCE_MIN, API_TOLERANCE_S, LISTEN_COLUMNS, LISTENS_SQL

PLAIN_RULE = f"""
WITH ev AS (
    SELECT *, coalesce(item_uri, item_type || ':' || coalesce(artist_name, '') || ':' || coalesce(track_name, ''))
              AS item_key
    FROM staged_listen_events
),
detailed AS (
    SELECT * FROM ev WHERE source_format IN ('extended', 'legacy')
    QUALIFY row_number() OVER (PARTITION BY user_id, item_key, ended_at
                               ORDER BY source_format = 'extended' DESC, ms_played DESC, listen_id) = 1
),
api AS (
    SELECT a.* FROM ev a WHERE a.source_format = 'api' AND NOT EXISTS (
        SELECT 1 FROM detailed d
        WHERE d.user_id = a.user_id AND d.item_uri = a.item_uri
          AND (abs(epoch(a.ended_at) - epoch(d.ended_at)) <= {API_TOLERANCE_S}
               OR abs(epoch(a.ended_at) - (epoch(d.ended_at) - d.ms_played / 1000.0)) <= {API_TOLERANCE_S}))
),
exact AS (SELECT * FROM detailed UNION ALL SELECT * FROM api),
account AS (SELECT * FROM ev WHERE source_format = 'account'),
minutes AS (
    SELECT user_id, item_type, track_name, artist_name,
           date_trunc('minute', ended_at) + shift * INTERVAL 1 MINUTE AS minute
    FROM exact, (SELECT unnest(range(-{ACCOUNT_TOLERANCE_MIN}, {ACCOUNT_TOLERANCE_MIN} + 1)) AS shift)
    WHERE track_name IS NOT NULL
      AND EXISTS (SELECT 1 FROM account c WHERE c.user_id = exact.user_id AND c.track_name = exact.track_name)
),
matched AS (
    SELECT DISTINCT c.listen_id FROM account c JOIN minutes m
      ON m.user_id = c.user_id AND m.item_type = c.item_type AND m.track_name = c.track_name
     AND m.artist_name IS NOT DISTINCT FROM c.artist_name AND m.minute = c.ended_at
)
SELECT {LISTEN_COLUMNS} FROM exact
UNION ALL
SELECT {LISTEN_COLUMNS} FROM account WHERE listen_id NOT IN (SELECT listen_id FROM matched)
"""


def _events(seed: int, n: int) -> list[tuple[object, ...]]:
    rng = random.Random(seed)
    start = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    rows = []
    for k in range(n):
        fmt = rng.choice(["extended", "extended", "legacy", "api", "account"])
        track = rng.randrange(4)
        uri = None if rng.random() < 0.15 else f"spotify:track:{track:022d}"
        seconds = rng.randrange(0, 600)
        ended = start + dt.timedelta(seconds=seconds - (seconds % 60 if fmt == "account" else 0))
        ms = None if fmt == "api" else rng.choice([0, 1000, 4000, 180_000])
        kind = rng.choice(["track", "track", "episode"]) if fmt == "account" else ("track" if uri else "unknown")
        rows.append(
            (
                f"id{k:05d}",
                rng.choice(["u", "u", "v"]),
                ended,
                ms,
                kind,
                f"{track:022d}" if uri else None,
                None if fmt == "account" else uri,
                rng.choice([f"Song {track}", None]) if uri is None else f"Song {track}",
                rng.choice([f"Artist {track}", None]),
                None,
                None,
                None,
                None,
                None,
                None,
                None,
                None,
                None,
                "api" if fmt == "api" else "export",
                fmt,
                start,
            )
        )
    return rows


@pytest.mark.parametrize("seed", range(12))
def test_the_rule_gives_the_rows_of_its_plain_form(seed: int) -> None:
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute(
        """CREATE TABLE staged_listen_events (listen_id VARCHAR, user_id VARCHAR, ended_at TIMESTAMPTZ,
           ms_played BIGINT, item_type VARCHAR, song_id VARCHAR, item_uri VARCHAR, track_name VARCHAR,
           artist_name VARCHAR, album_name VARCHAR, reason_start VARCHAR, reason_end VARCHAR, shuffle BOOLEAN,
           skipped BOOLEAN, offline BOOLEAN, incognito BOOLEAN, platform VARCHAR, country VARCHAR, source VARCHAR,
           source_format VARCHAR, imported_at TIMESTAMPTZ)"""
    )
    con.executemany(f"INSERT INTO staged_listen_events VALUES ({', '.join(['?'] * 21)})", _events(seed, 400))
    plain = sorted(con.execute(f"SELECT * FROM ({PLAIN_RULE})").fetchall(), key=lambda r: r[0])
    written = sorted(con.execute(f"SELECT * FROM ({LISTENS_SQL})").fetchall(), key=lambda r: r[0])
    assert written == plain
    # crowded enough that every rule drops something
    dropped = {r[0] for r in con.execute("SELECT listen_id, source_format FROM staged_listen_events").fetchall()}
    dropped -= {r[0] for r in written}
    formats = {r[0]: r[1] for r in con.execute("SELECT listen_id, source_format FROM staged_listen_events").fetchall()}
    kinds = {formats[d] for d in dropped}
    assert {"api", "account"} <= kinds and kinds & {"extended", "legacy"}, kinds
