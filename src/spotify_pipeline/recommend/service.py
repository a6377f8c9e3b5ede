"""Recommendations from the lake: the model built once from the tables and kept in the lake, lookups with it,
results stored in the `recommendations` table. Needs nothing but what the lake holds (no API request, so it
works the same in Development Mode, where Spotify's /recommendations no longer exists).

The model lives in the lake (written atomically, replaced whole):

    models/recommend/model.parquet   neighbours, title words, popular songs and song names (store.py)
    models/recommend/model.json      when and from which table snapshots it was built, its parameters

It is rebuilt when `playlist_songs`, `playlists` or `listens` has a newer snapshot than the one it was
built from. Two ways to ask: `Recommender` loads the model once and answers many questions (serve,
GraphQL, the library); the one-shot functions (`recommend_for_playlist`, the CLI) read only the rows one
question needs from the model file and the playlist's rows from the lake.
"""

from __future__ import annotations

import datetime as dt
import json
import tempfile
import time
from pathlib import Path

import duckdb
import pyarrow as pa

from ..errors import InputError
from ..lake.storage import Storage
from ..tables.catalog import Catalog
from ..transform.connection import connect, register_table
from .evaluate import Evaluation, evaluate
from .model import ModelParams, build, rank, title_tokens
from .results import ModelInfo, Recommendation, Recommendations
from .store import LoadedModel, ModelRows, write_model

MODEL_PREFIX = "models/recommend/"
MODEL_KEY = MODEL_PREFIX + "model.parquet"
META_KEY = MODEL_PREFIX + "model.json"
SOURCE_TABLES = ("playlist_songs", "playlists", "listens")
# DuckDB's cap while building (SPOTIFY_PIPELINE_MEMORY_LIMIT overrides it): 1M playlist items build in it.
BUILD_MEMORY = "2GB"


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
    con = connect(remote=catalog.remote, memory_limit=BUILD_MEMORY)
    spill = tempfile.TemporaryDirectory(prefix="spotify-pipeline-recommend-spill-")
    try:
        # bounded memory: DuckDB spills what does not fit (pairs, sorts) to a scratch folder
        con.execute(f"SET temp_directory = '{spill.name}'")  # mkdtemp's name: no quote to escape
        register_table(con, catalog, "playlist_songs", "members")
        register_table(con, catalog, "playlists", "rec_titles")
        register_table(con, catalog, "listens", "rec_listens")
        register_table(con, catalog, "songs", "rec_songs_table")
        register_table(con, catalog, "artists", "rec_artists_table")
        con.execute(
            "CREATE TEMP VIEW rec_plays AS SELECT user_id, ended_at AS played_at, song_id FROM rec_listens "
            "WHERE item_type = 'track'"
        )
        counts = build(con, params, plays="rec_plays", titles="rec_titles")
        with tempfile.TemporaryDirectory(prefix="spotify-pipeline-recommend-") as tmp:
            path = Path(tmp) / "model.parquet"
            write_model(con, path, songs="rec_songs_table", artists="rec_artists_table")
            storage.write_atomic(MODEL_KEY, path.read_bytes(), overwrite=True)
    finally:
        con.close()
        spill.cleanup()
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


class _ModelFile:
    """The stored model file as a local path (downloaded to a temporary folder from S3)."""

    def __init__(self, storage: Storage) -> None:
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        local = storage.local_path(MODEL_KEY)
        if local is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="spotify-pipeline-recommend-")
            local = Path(self._tmp.name) / "model.parquet"
            local.write_bytes(storage.read(MODEL_KEY))
        self.path = local

    def close(self) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()


def _title_words(con: duckdb.DuckDBPyConnection, name: str | None) -> list[str]:
    rows = con.execute(f"SELECT unnest({title_tokens('?::VARCHAR')})", [name]).fetchall()
    return [r[0] for r in rows]


def _ask(
    con: duckdb.DuckDBPyConnection,
    model: LoadedModel | ModelRows,
    target: str,
    seeds: list[str],
    exclude: list[str],
    words: list[str],
    n: int,
) -> pa.Table:
    """Rank with the model's rows for these seeds and title words only (a few thousand rows at most)."""
    titles = model.titles(words)
    con.register("rec_q_neighbors", model.neighbors(seeds))
    con.register("rec_q_title", titles)
    con.register("rec_q_popular", model.popularity)
    if isinstance(model, LoadedModel):
        con.register("rec_q_stats", model.stats)
    else:
        candidates = titles.column("song_id").to_pylist() + model.popularity.column("song_id").to_pylist()
        con.register("rec_q_stats", model.stats(candidates if words else []))
    seed_table = pa.table(
        {"target": pa.array([target] * len(seeds), pa.string()), "song_id": pa.array(seeds, pa.string())}
    )
    exclude_rows = [*exclude, None]  # one row at least, so the target is ranked even with no seeds
    exclude_table = pa.table(
        {"target": pa.array([target] * len(exclude_rows), pa.string()), "song_id": pa.array(exclude_rows, pa.string())}
    )
    title_table = pa.table(
        {"target": pa.array([target] * len(words), pa.string()), "token": pa.array(words, pa.string())}
    )
    try:
        return rank(
            con,
            seed_table,
            exclude_table,
            n,
            neighbors="rec_q_neighbors",
            popularity="rec_q_popular",
            titles=title_table,
            title_index="rec_q_title",
            song_stats="rec_q_stats",
        )
    finally:
        for view in ("rec_q_neighbors", "rec_q_title", "rec_q_popular", "rec_q_stats"):
            con.unregister(view)


def _reason(source: str, together: int, seed_name: str | None, seed_artist: str | None, title: str | None) -> str:
    seed = f"{seed_name or '?'}" + (f" by {seed_artist}" if seed_artist else "")
    playlists = f"{together} playlist{'s' if together != 1 else ''}"
    if source == "playlists":
        return f"often together with {seed} in your playlists ({playlists})"
    if source == "listens":
        return f"you played it {together} time{'s' if together != 1 else ''} after {seed}"
    if source == "title":
        return f'in playlists named like "{title}" ({playlists} with a word of it)'
    return f"popular in your playlists (in {playlists})"


def _describe(model: LoadedModel | ModelRows, ranked: pa.Table, title: str | None) -> list[Recommendation]:
    ids = sorted(
        {s for s in ranked.column("song_id").to_pylist()} | {s for s in ranked.column("because_of").to_pylist() if s}
    )
    names: dict[str, tuple[str | None, str | None]] = {}
    if ids:
        found = model.names_of(ids)
        names = {r["song_id"]: (r["name"], r["artist"]) for r in found.to_pylist()}
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
                reason=_reason(row["source"], int(row["together"] or 0), seed_name, seed_artist, title),
            )
        )
    return out


def _playlist_rows(
    con: duckdb.DuckDBPyConnection, members: str, playlists: str, playlist_id: str
) -> tuple[str, list[str]]:
    """The playlist's name and its songs in position order; a clean error when it is not in the lake."""
    found = con.execute(f"SELECT name FROM {playlists} WHERE playlist_id = ?", [playlist_id]).fetchall()
    if not found:
        raise InputError(
            f"playlist {playlist_id} is not in the lake",
            hint=f"run `spotify-pipeline run --playlist {playlist_id}` first",
        )
    seeds = [
        r[0]
        for r in con.execute(
            f"SELECT song_id FROM {members} WHERE playlist_id = ? AND song_id IS NOT NULL "
            "GROUP BY song_id ORDER BY min(position), song_id",
            [playlist_id],
        ).fetchall()
    ]
    return found[0][0], seeds


class Recommender:
    """The model loaded once, for many questions (serve, GraphQL, the library): each answer reads nothing
    from disk. `refresh()` reloads it (rebuilding the model first) when the lake has changed since."""

    def __init__(self, storage: Storage, catalog: Catalog, *, rebuild: bool = False) -> None:
        self._storage, self._catalog = storage, catalog
        self._con: duckdb.DuckDBPyConnection | None = None
        self._load(rebuild)

    def _load(self, rebuild: bool) -> None:
        info = current_model(self._storage, self._catalog, rebuild=rebuild)
        file = _ModelFile(self._storage)
        try:
            model = LoadedModel(file.path)
        finally:
            file.close()
        con = connect(remote=self._catalog.remote)
        # the playlists' rows, at the snapshots the model was built from, held in memory sorted by playlist
        for table in ("playlist_songs", "playlists"):
            snapshot = info.sources.get(table)
            register_table(con, self._catalog, table, f"rec_{table}_files", snapshot)
        con.execute(
            "CREATE TABLE rec_members AS SELECT playlist_id, song_id, position FROM rec_playlist_songs_files "
            "WHERE song_id IS NOT NULL ORDER BY playlist_id, position"
        )
        con.execute("CREATE TABLE rec_names AS SELECT playlist_id, name FROM rec_playlists_files ORDER BY playlist_id")
        if self._con is not None:
            self._con.close()
        self.info, self._model, self._con = info, model, con

    def refresh(self) -> bool:
        """Reload when a source table has a newer snapshot than the model; True when it did."""
        if _sources(self._catalog) == self.info.sources:
            return False
        self._load(False)
        return True

    def for_playlist(self, playlist_id: str, n: int = 50) -> Recommendations:
        """Songs that continue the playlist, none of them already in it."""
        if self._con is None:
            raise InputError("this Recommender is closed", hint="open a new one")
        name, seeds = _playlist_rows(self._con, "rec_members", "rec_names", playlist_id)
        words = _title_words(self._con, name)
        ranked = _ask(self._con, self._model, playlist_id, seeds, seeds, words, n)
        items = _describe(self._model, ranked, name)
        return Recommendations("playlist", playlist_id, name, len(seeds), items, self.info)

    def close(self) -> None:
        if self._con is not None:
            self._con.close()
            self._con = None

    def __enter__(self) -> Recommender:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def recommend_for_playlist(
    storage: Storage, catalog: Catalog, playlist_id: str, n: int = 50, *, rebuild: bool = False
) -> Recommendations:
    """Songs that continue the playlist, none of them already in it: one question, so only the model rows
    it needs are read (the seeds' neighbours, the title's words, the popular songs and their names)."""
    info = current_model(storage, catalog, rebuild=rebuild)
    con = connect(remote=catalog.remote)
    file = _ModelFile(storage)
    try:
        register_table(con, catalog, "playlist_songs", "rec_playlist_songs_table")
        register_table(con, catalog, "playlists", "rec_playlists_table")
        name, seeds = _playlist_rows(con, "rec_playlist_songs_table", "rec_playlists_table", playlist_id)
        model = ModelRows(con, file.path)
        ranked = _ask(con, model, playlist_id, seeds, seeds, _title_words(con, name), n)
        return Recommendations("playlist", playlist_id, name, len(seeds), _describe(model, ranked, name), info)
    finally:
        con.close()
        file.close()


def recommend_for_user(
    storage: Storage, catalog: Catalog, user_id: str | None = None, n: int = 50, *, rebuild: bool = False
) -> Recommendations:
    """Songs for the user, from their liked songs, top tracks and the last 50 songs they played; none they
    already like or have among their top tracks."""
    info = current_model(storage, catalog, rebuild=rebuild)
    con = connect(remote=catalog.remote)
    file = _ModelFile(storage)
    try:
        for name in ("saved_songs", "user_top", "listens"):
            register_table(con, catalog, name, f"rec_{name}_table")
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
        model = ModelRows(con, file.path)
        ranked = _ask(con, model, f"user:{user_id}", seeds, list(dict.fromkeys(liked + top)), [], n)
        return Recommendations("user", user_id, user_id, len(seeds), _describe(model, ranked, None), info)
    finally:
        con.close()
        file.close()


def evaluate_lake(
    catalog: Catalog, *, seed: int = 0, per_category: int | None = None, params: ModelParams | None = None
) -> Evaluation:
    """`evaluate` over the lake's playlists and their names (listens left out: see evaluate.py)."""
    con = connect(remote=catalog.remote)
    try:
        register_table(con, catalog, "playlist_songs", "members")
        register_table(con, catalog, "song_artists", "song_artists")
        register_table(con, catalog, "playlists", "titles")
        return evaluate(con, seed=seed, per_category=per_category, params=params)
    finally:
        con.close()
