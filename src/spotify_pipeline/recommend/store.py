"""The stored model: one Parquet file, written once per build, read either whole (a long-lived `Recommender`
loads it once) or a few rows at a time (a one-shot `recommend` reads only what one playlist needs).

One file, four kinds of rows (sorted by kind, then key, so a reader skips the row groups it does not need):

    kind      key             token  song            source     score           together     song_id name artist
    song      its index       -      its index       -          share of lists  playlists    yes     yes  yes
    neighbor  seed's index    -      neighbour's     playlists/ score           together     -       -    -
                                     index           listens
    title     -               word   song's index    -          evidence        playlists    -       -    -
    popular   rank            -      song's index    -          -               playlists    -       -    -

Songs are stored once, as integer indexes elsewhere: the neighbour rows (most of the file) are four numbers
each, which keeps the file and a loaded model small (about 20 bytes per neighbour row in memory).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..tables.files import sql_path, sql_string

NEIGHBOR_SCHEMA = pa.schema(
    [
        ("song_id", pa.string()),
        ("neighbor_id", pa.string()),
        ("source", pa.string()),
        ("score", pa.float64()),
        ("together", pa.int64()),
    ]
)
TITLE_SCHEMA = pa.schema(
    [("token", pa.string()), ("song_id", pa.string()), ("score", pa.float64()), ("together", pa.int64())]
)


def write_model(con: duckdb.DuckDBPyConnection, path: Path, *, songs: str, artists: str) -> None:
    """Write the model `build` left in `con` (rec_neighbors_i, rec_listen_neighbors, rec_title,
    rec_popularity, rec_song_stats) as one Parquet file; `songs(song_id, name, artist_id)` and
    `artists(artist_id, name)` give display names. A song's index is its number in rec_song_stats (so the
    playlist neighbours, most of the file, are written as they are, with no join), then songs heard but in
    no playlist."""
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE rec_index AS
        WITH heard AS (
            SELECT song_id FROM rec_listen_neighbors UNION SELECT neighbor_id FROM rec_listen_neighbors
        ), ids AS (
            SELECT s - 1 AS i, song_id, playlists, share FROM rec_song_stats
            UNION ALL
            SELECT (SELECT count(*) FROM rec_song_stats) + row_number() OVER (ORDER BY song_id) - 1, song_id, 0, 0
            FROM heard WHERE song_id NOT IN (SELECT song_id FROM rec_song_stats)
        )
        SELECT ids.i::INTEGER AS i, ids.song_id, ids.playlists::BIGINT AS playlists, ids.share::DOUBLE AS share,
               s.name, a.name AS artist
        FROM ids
        LEFT JOIN (SELECT song_id, any_value(name) AS name, any_value(artist_id) AS artist_id FROM {songs}
                   GROUP BY song_id) s USING (song_id)
        LEFT JOIN (SELECT artist_id, any_value(name) AS name FROM {artists} GROUP BY artist_id) a USING (artist_id)
        """
    )
    target = sql_string(str(path))  # COPY ... TO writes this literal path: not a pattern, not escaped
    con.execute(
        f"""
        COPY (
            SELECT 'song' AS kind, i AS key, NULL::VARCHAR AS token, i AS song, NULL::VARCHAR AS source,
                   share AS score, playlists AS together, song_id, name, artist
            FROM rec_index
            UNION ALL
            SELECT 'neighbor', a - 1, NULL, b - 1, 'playlists', score, together, NULL, NULL, NULL
            FROM rec_neighbors_i
            UNION ALL
            SELECT 'neighbor', a.i, NULL, b.i, n.source, n.score, n.together, NULL, NULL, NULL
            FROM rec_listen_neighbors n JOIN rec_index a ON a.song_id = n.song_id
            JOIN rec_index b ON b.song_id = n.neighbor_id
            UNION ALL
            SELECT 'title', NULL, t.token, x.i, NULL, t.score, t.together, NULL, NULL, NULL
            FROM rec_title t JOIN rec_index x USING (song_id)
            UNION ALL
            SELECT 'popular', (row_number() OVER (ORDER BY p.playlists DESC, p.song_id))::INTEGER, NULL, x.i, NULL,
                   NULL, p.playlists, NULL, NULL, NULL
            FROM rec_popularity p JOIN rec_index x USING (song_id)
            ORDER BY kind, key, token
        ) TO {target} (FORMAT parquet, ROW_GROUP_SIZE 100000)
        """
    )
    con.execute("DROP TABLE rec_index")


def _spans(keys: pa.Array) -> dict[object, tuple[int, int]]:
    """Where each run of equal keys starts and stops, for keys sorted (run-end encoding does the work)."""
    if not len(keys):
        return {}
    runs = pc.run_end_encode(keys)
    ends = runs.run_ends.to_pylist()
    starts = [0, *ends[:-1]]
    return {key: (start, end) for key, start, end in zip(runs.values.to_pylist(), starts, ends, strict=True)}


class LoadedModel:
    """The whole model in memory, for many lookups: the rows of one seed song (or title word) are one
    slice of an Arrow table, found in a dict, so a lookup costs a few slices, not a scan."""

    def __init__(self, path: Path) -> None:
        table = pq.read_table(path)
        kind = table.column("kind")
        songs = table.filter(pc.equal(kind, "song"))
        self.song_ids = songs.column("song_id").combine_chunks()
        self.index = {song: i for i, song in enumerate(self.song_ids.to_pylist())}
        self.names = songs.select(["song_id", "name", "artist"])
        self.stats = pa.table(
            {
                "song_id": self.song_ids,
                "playlists": songs.column("together").combine_chunks(),
                "share": songs.column("score").combine_chunks(),
            }
        )
        neighbors = table.filter(pc.equal(kind, "neighbor")).combine_chunks()
        self._neighbors = neighbors.select(["key", "song", "source", "score", "together"])
        self._neighbor_span = _spans(neighbors.column("key").combine_chunks())
        titles = table.filter(pc.equal(kind, "title"))
        self._titles = pa.table(
            {
                "token": titles.column("token"),
                "song_id": self.song_ids.take(titles.column("song")),
                "score": titles.column("score"),
                "together": titles.column("together"),
            }
        ).combine_chunks()
        self._title_span = _spans(self._titles.column("token").combine_chunks())
        popular = table.filter(pc.equal(kind, "popular"))
        self.popularity = pa.table(
            {"song_id": self.song_ids.take(popular.column("song")), "playlists": popular.column("together")}
        )
        self.neighbor_rows = len(self._neighbors)

    def neighbors(self, seeds: Iterable[str]) -> pa.Table:
        found = (self.index.get(s) for s in dict.fromkeys(seeds))
        spans = [self._neighbor_span[i] for i in found if i in self._neighbor_span]
        if not spans:
            return NEIGHBOR_SCHEMA.empty_table()
        rows = pa.concat_tables([self._neighbors.slice(a, b - a) for a, b in spans]).combine_chunks()
        return pa.table(
            {
                "song_id": self.song_ids.take(rows.column("key")),
                "neighbor_id": self.song_ids.take(rows.column("song")),
                "source": rows.column("source"),
                "score": rows.column("score"),
                "together": rows.column("together"),
            }
        ).cast(NEIGHBOR_SCHEMA)

    def titles(self, tokens: Iterable[str]) -> pa.Table:
        spans = [self._title_span[t] for t in dict.fromkeys(tokens) if t in self._title_span]
        if not spans:
            return TITLE_SCHEMA.empty_table()
        return pa.concat_tables([self._titles.slice(a, b - a) for a, b in spans]).cast(TITLE_SCHEMA)

    def names_of(self, songs: Iterable[str]) -> pa.Table:
        return self.names.take(pa.array([self.index[s] for s in dict.fromkeys(songs) if s in self.index], pa.int64()))


class ModelRows:
    """The same lookups as `LoadedModel`, read from the file for one question (a one-shot command): only
    the rows of the seeds, the title words and the popular songs, never the whole file."""

    def __init__(self, con: duckdb.DuckDBPyConnection, path: Path) -> None:
        self._con = con
        self._file = sql_path(str(path))
        self.popularity = con.sql(
            f"SELECT s.song_id, p.together AS playlists FROM read_parquet({self._file}) p "
            f"JOIN read_parquet({self._file}) s ON s.kind = 'song' AND s.key = p.song "
            "WHERE p.kind = 'popular' ORDER BY p.key"
        ).to_arrow_table()
        con.register("rec_model_popular", self.popularity)

    def _songs(self, where: str, params: list[object]) -> pa.Table:
        return self._con.sql(
            f"SELECT key, song_id, together AS playlists, score AS share, name, artist FROM read_parquet({self._file}) "
            f"WHERE kind = 'song' AND {where}",
            params=params,
        ).to_arrow_table()

    def neighbors(self, seeds: Iterable[str]) -> pa.Table:
        wanted = list(dict.fromkeys(seeds))
        if not wanted:
            return NEIGHBOR_SCHEMA.empty_table()
        found = self._songs("list_contains(?, song_id)", [wanted])
        self._con.register("rec_model_seeds", found)
        return (
            self._con.sql(
                f"""
            WITH rows AS (SELECT key, song, source, score, together FROM read_parquet({self._file})
                          WHERE kind = 'neighbor' AND key IN (SELECT key FROM rec_model_seeds)),
            names AS (SELECT key, song_id FROM read_parquet({self._file})
                      WHERE kind = 'song' AND key IN (SELECT song FROM rows))
            SELECT s.song_id, n.song_id AS neighbor_id, r.source, r.score, r.together
            FROM rows r JOIN rec_model_seeds s ON s.key = r.key JOIN names n ON n.key = r.song
            """
            )
            .to_arrow_table()
            .cast(NEIGHBOR_SCHEMA)
        )

    def titles(self, tokens: Iterable[str]) -> pa.Table:
        wanted = list(dict.fromkeys(tokens))
        if not wanted:
            return TITLE_SCHEMA.empty_table()
        return (
            self._con.sql(
                f"""
            WITH rows AS (SELECT token, song, score, together FROM read_parquet({self._file})
                          WHERE kind = 'title' AND list_contains(?, token))
            SELECT r.token, s.song_id, r.score, r.together FROM rows r
            JOIN read_parquet({self._file}) s ON s.kind = 'song' AND s.key = r.song
            """,
                params=[wanted],
            )
            .to_arrow_table()
            .cast(TITLE_SCHEMA)
        )

    def stats(self, songs: Iterable[str]) -> pa.Table:
        return self._songs("list_contains(?, song_id)", [list(dict.fromkeys(songs))]).select(
            ["song_id", "playlists", "share"]
        )

    def names_of(self, songs: Iterable[str]) -> pa.Table:
        return self._songs("list_contains(?, song_id)", [list(dict.fromkeys(songs))]).select(
            ["song_id", "name", "artist"]
        )
