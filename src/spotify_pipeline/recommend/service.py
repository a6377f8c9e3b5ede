"""Recommendations from the lake: the model built once from the tables and kept in the lake, lookups with it,
results stored in the `recommendations` table. Needs nothing but what the lake holds (no API request, so it
works the same in Development Mode, where Spotify's /recommendations no longer exists).

The model lives in the lake (written atomically, replaced whole):

    models/recommend/neighbors.parquet    rec_neighbors, sorted by song_id (a lookup reads few row groups)
    models/recommend/popularity.parquet   rec_popularity
    models/recommend/model.json           when and from which table snapshots it was built, its parameters

It is rebuilt when `playlist_songs` or `listens` has a newer snapshot than the one it was built from.
"""

from __future__ import annotations

import datetime as dt
import json
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from ..errors import InputError
from ..lake.storage import Storage
from ..tables.catalog import Catalog
from ..tables.contract import TABLES
from ..transform.runner import connect, register_table
from .evaluate import Evaluation, evaluate
from .model import ModelParams, build, rank

MODEL_PREFIX = "models/recommend/"
NEIGHBORS_KEY = MODEL_PREFIX + "neighbors.parquet"
POPULARITY_KEY = MODEL_PREFIX + "popularity.parquet"
META_KEY = MODEL_PREFIX + "model.json"
SOURCE_TABLES = ("playlist_songs", "listens")


@dataclass(frozen=True)
class ModelInfo:
    built_at: str
    sources: dict[str, int | None]  # table -> snapshot id built from
    songs: int
    neighbors: int
    build_seconds: float
    params: dict[str, float]


@dataclass(frozen=True)
class Recommendation:
    rank: int
    song_id: str
    song: str | None
    artist: str | None
    score: float
    source: str  # playlists, listens or popularity
    because_of: str | None  # the seed song behind it
    reason: str


@dataclass(frozen=True)
class Recommendations:
    target_type: str  # playlist or user
    target_id: str
    target_name: str | None
    seeds: int
    items: list[Recommendation]
    model: ModelInfo


def _sources(catalog: Catalog) -> dict[str, int | None]:
    names = set(catalog.table_names())
    return {name: catalog.snapshot_id(name) if name in names else None for name in SOURCE_TABLES}


def load_model_info(storage: Storage) -> ModelInfo | None:
    if not storage.exists(META_KEY):
        return None
    return ModelInfo(**json.loads(storage.read(META_KEY)))


def build_model(storage: Storage, catalog: Catalog, params: ModelParams | None = None) -> ModelInfo:
    """Build the model from the lake's tables and store it under models/recommend/."""
    params = params or ModelParams()
    started = time.monotonic()
    sources = _sources(catalog)
    con = connect(remote=catalog.remote)
    try:
        register_table(con, catalog, "playlist_songs", "members")
        register_table(con, catalog, "listens", "rec_listens")
        con.execute(
            "CREATE TEMP VIEW rec_plays AS SELECT user_id, ended_at AS played_at, song_id FROM rec_listens "
            "WHERE item_type = 'track'"
        )
        counts = build(con, params, plays="rec_plays")
        with tempfile.TemporaryDirectory(prefix="spotify-pipeline-recommend-") as tmp:
            for table, key, order in (
                ("rec_neighbors", NEIGHBORS_KEY, "song_id, score DESC"),
                ("rec_popularity", POPULARITY_KEY, "playlists DESC, song_id"),
            ):
                path = Path(tmp) / "model.parquet"
                con.execute(
                    f"COPY (SELECT * FROM {table} ORDER BY {order}) TO '{path}' (FORMAT parquet, ROW_GROUP_SIZE 20000)"
                )
                storage.write_atomic(key, path.read_bytes(), overwrite=True)
    finally:
        con.close()
    info = ModelInfo(
        built_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        sources=sources,
        songs=counts["songs"],
        neighbors=counts["neighbors"],
        build_seconds=round(time.monotonic() - started, 3),
        params=params.as_dict(),
    )
    storage.write_atomic(META_KEY, json.dumps(info.__dict__, indent=2).encode(), overwrite=True)
    return info


def current_model(storage: Storage, catalog: Catalog, *, rebuild: bool = False) -> ModelInfo:
    """The stored model, (re)built first when missing, asked for, or older than its source tables."""
    info = load_model_info(storage)
    if rebuild or info is None or info.sources != _sources(catalog):
        info = build_model(storage, catalog)
    return info


class _ModelFiles:
    """The stored model's Parquet files as local paths (downloaded to a temporary folder from S3)."""

    def __init__(self, storage: Storage) -> None:
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self.paths: dict[str, str] = {}
        for key in (NEIGHBORS_KEY, POPULARITY_KEY):
            local = storage.local_path(key)
            if local is None:
                if self._tmp is None:
                    self._tmp = tempfile.TemporaryDirectory(prefix="spotify-pipeline-recommend-")
                local = Path(self._tmp.name) / key.rsplit("/", 1)[1]
                local.write_bytes(storage.read(key))
            self.paths[key] = str(local).replace("'", "''")

    def close(self) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()


def _quoted(values: list[str]) -> str:
    return ", ".join("'" + v.replace("'", "''") + "'" for v in values) or "NULL"


def _rank_with_stored_model(
    con: duckdb.DuckDBPyConnection, storage: Storage, target: str, seeds: list[str], exclude: list[str], n: int
) -> pa.Table:
    files = _ModelFiles(storage)
    try:
        # Only the seeds' rows: the file is sorted by song_id, so DuckDB skips the other row groups.
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE rec_neighbors AS SELECT * FROM read_parquet('{files.paths[NEIGHBORS_KEY]}') "
            f"WHERE song_id IN ({_quoted(sorted(set(seeds)))})"
        )
        con.execute(
            "CREATE OR REPLACE TEMP TABLE rec_popularity AS "
            f"SELECT * FROM read_parquet('{files.paths[POPULARITY_KEY]}')"
        )
    finally:
        files.close()
    seed_table = pa.table(
        {"target": pa.array([target] * len(seeds), pa.string()), "song_id": pa.array(seeds, pa.string())}
    )
    exclude_rows = [*exclude, None]  # one row at least, so the target is ranked even with no seeds
    exclude_table = pa.table(
        {"target": pa.array([target] * len(exclude_rows), pa.string()), "song_id": pa.array(exclude_rows, pa.string())}
    )
    return rank(con, seed_table, exclude_table, n)


def _reason(source: str, together: int, seed_name: str | None, seed_artist: str | None) -> str:
    seed = f"{seed_name or '?'}" + (f" by {seed_artist}" if seed_artist else "")
    playlists = f"{together} playlist{'s' if together != 1 else ''}"
    if source == "playlists":
        return f"often together with {seed} in your playlists ({playlists})"
    if source == "listens":
        return f"you played it {together} time{'s' if together != 1 else ''} after {seed}"
    return f"popular in your playlists (in {playlists})"


def _describe(con: duckdb.DuckDBPyConnection, ranked: pa.Table) -> list[Recommendation]:
    ids = sorted(
        {s for s in ranked.column("song_id").to_pylist()} | {s for s in ranked.column("because_of").to_pylist() if s}
    )
    names: dict[str, tuple[str | None, str | None]] = {}
    if ids:
        rows = con.execute(
            f"SELECT s.song_id, s.name, a.name FROM rec_songs_table s LEFT JOIN rec_artists_table a "
            f"ON a.artist_id = s.artist_id WHERE s.song_id IN ({_quoted(ids)})"
        ).fetchall()
        names = {song: (name, artist) for song, name, artist in rows}
    out = []
    for row in ranked.to_pylist():
        name, artist = names.get(row["song_id"], (None, None))
        seed_name, seed_artist = names.get(row["because_of"], (None, None)) if row["because_of"] else (None, None)
        out.append(
            Recommendation(
                rank=row["rank"],
                song_id=row["song_id"],
                song=name,
                artist=artist,
                score=round(float(row["score"]), 6),
                source=row["source"],
                because_of=row["because_of"],
                reason=_reason(row["source"], int(row["together"] or 0), seed_name, seed_artist),
            )
        )
    return out


def _lake_connection(catalog: Catalog) -> duckdb.DuckDBPyConnection:
    con = connect(remote=catalog.remote)
    for name in ("playlist_songs", "playlists", "saved_songs", "user_top", "listens"):
        register_table(con, catalog, name, f"rec_{name}_table")
    register_table(con, catalog, "songs", "rec_songs_table")
    register_table(con, catalog, "artists", "rec_artists_table")
    return con


def recommend_for_playlist(
    storage: Storage, catalog: Catalog, playlist_id: str, n: int = 50, *, rebuild: bool = False
) -> Recommendations:
    """Songs that continue the playlist, none of them already in it."""
    info = current_model(storage, catalog, rebuild=rebuild)
    con = _lake_connection(catalog)
    try:
        found = con.execute("SELECT name FROM rec_playlists_table WHERE playlist_id = ?", [playlist_id]).fetchall()
        if not found:
            raise InputError(
                f"playlist {playlist_id} is not in the lake",
                hint=f"run `spotify-pipeline run --playlist {playlist_id}` first",
            )
        seeds = [
            r[0]
            for r in con.execute(
                "SELECT song_id FROM rec_playlist_songs_table WHERE playlist_id = ? AND song_id IS NOT NULL "
                "GROUP BY song_id ORDER BY min(position)",
                [playlist_id],
            ).fetchall()
        ]
        ranked = _rank_with_stored_model(con, storage, playlist_id, seeds, seeds, n)
        return Recommendations("playlist", playlist_id, found[0][0], len(seeds), _describe(con, ranked), info)
    finally:
        con.close()


def recommend_for_user(
    storage: Storage, catalog: Catalog, user_id: str | None = None, n: int = 50, *, rebuild: bool = False
) -> Recommendations:
    """Songs for the user, from their liked songs, top tracks and the last 50 songs they played; none they
    already like or have among their top tracks."""
    info = current_model(storage, catalog, rebuild=rebuild)
    con = _lake_connection(catalog)
    try:
        users = [
            r[0]
            for r in con.execute(
                "SELECT user_id FROM (SELECT user_id FROM rec_saved_songs_table UNION ALL SELECT user_id FROM "
                "rec_user_top_table UNION ALL SELECT user_id FROM rec_listens_table) WHERE user_id IS NOT NULL "
                "GROUP BY user_id ORDER BY count(*) DESC, user_id"
            ).fetchall()
        ]
        if user_id is None:
            if not users:
                raise InputError(
                    "no liked songs, top items or listening history in the lake",
                    hint="run `spotify-pipeline run --source liked --source top --source recently-played` "
                    "(after `spotify-pipeline login`) or `spotify-pipeline import-history`",
                )
            user_id = users[0]
        elif user_id not in users:
            raise InputError(f"no liked songs, top items or listens of user {user_id!r} in the lake")
        liked = [
            r[0]
            for r in con.execute(
                "SELECT song_id FROM rec_saved_songs_table WHERE user_id = ? ORDER BY added_at DESC", [user_id]
            ).fetchall()
        ]
        top = [
            r[0]
            for r in con.execute(
                "SELECT item_id FROM rec_user_top_table WHERE user_id = ? AND item_type = 'track' "
                "AND observed_date = (SELECT max(observed_date) FROM rec_user_top_table WHERE user_id = ?) "
                "ORDER BY rank",
                [user_id, user_id],
            ).fetchall()
        ]
        recent = [
            r[0]
            for r in con.execute(
                "SELECT song_id FROM rec_listens_table WHERE user_id = ? AND song_id IS NOT NULL "
                "ORDER BY ended_at DESC LIMIT 50",
                [user_id],
            ).fetchall()
        ]
        seeds = list(dict.fromkeys(liked + top + recent))
        ranked = _rank_with_stored_model(con, storage, f"user:{user_id}", seeds, list(dict.fromkeys(liked + top)), n)
        return Recommendations("user", user_id, user_id, len(seeds), _describe(con, ranked), info)
    finally:
        con.close()


def save_recommendations(catalog: Catalog, result: Recommendations) -> None:
    """Replace the target's rows of the `recommendations` table with these (one commit)."""
    now = dt.datetime.now(dt.UTC)
    built = dt.datetime.fromisoformat(result.model.built_at)
    schema = TABLES["recommendations"].schema
    new = pa.Table.from_pylist(
        [
            {
                "target_type": result.target_type,
                "target_id": result.target_id,
                "rank": r.rank,
                "song_id": r.song_id,
                "score": r.score,
                "source": r.source,
                "because_of": r.because_of,
                "reason": r.reason,
                "model_built_at": built,
                "generated_at": now,
            }
            for r in result.items
        ],
        schema=schema,
    )
    old = catalog.read("recommendations") if "recommendations" in catalog.table_names() else schema.empty_table()
    keep = [
        not (t == result.target_type and i == result.target_id)
        for t, i in zip(old.column("target_type").to_pylist(), old.column("target_id").to_pylist(), strict=True)
    ]
    catalog.overwrite("recommendations", pa.concat_tables([old.filter(pa.array(keep, pa.bool_())).cast(schema), new]))


def evaluate_lake(
    catalog: Catalog, *, seed: int = 0, per_category: int | None = None, params: ModelParams | None = None
) -> Evaluation:
    """`evaluate` over the lake's playlists (listens left out: see evaluate.py)."""
    con = connect(remote=catalog.remote)
    try:
        register_table(con, catalog, "playlist_songs", "members")
        register_table(con, catalog, "song_artists", "song_artists")
        return evaluate(con, seed=seed, per_category=per_category, params=params)
    finally:
        con.close()


def as_json(result: Recommendations) -> dict[str, Any]:
    return {
        "target_type": result.target_type,
        "target_id": result.target_id,
        "target_name": result.target_name,
        "seeds": result.seeds,
        "model_built_at": result.model.built_at,
        "recommendations": [r.__dict__ for r in result.items],
    }
