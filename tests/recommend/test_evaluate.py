"""The held-out evaluation: deterministic, and blind to the held-out tracks."""

from __future__ import annotations

import duckdb
import pyarrow as pa

from spotify_pipeline.recommend.evaluate import CATEGORIES, MIN_HELD_OUT, evaluate, split
from spotify_pipeline.simulator import Catalog, CatalogConfig


def members_of(catalog: Catalog) -> list[tuple[str, str, int]]:
    return [
        (catalog.id_of("playlist", p), catalog.id_of("track", e.ref), pos)
        for p in range(catalog.config.playlists)
        for pos, e in enumerate(catalog.entries(p))
        if e.kind == "track"
    ]


def titles_of(catalog: Catalog) -> dict[str, str]:
    return {catalog.id_of("playlist", p): catalog.playlist_name(p) for p in range(catalog.config.playlists)}


def connection(rows: list[tuple[str, str, int]], titles: dict[str, str] | None = None) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    if titles is not None:
        con.register("titles", pa.table({"playlist_id": list(titles), "name": list(titles.values())}))
    table = pa.table(
        {
            "playlist_id": [r[0] for r in rows],
            "song_id": [r[1] for r in rows],
            "position": pa.array([r[2] for r in rows], pa.int32()),
        }
    )
    con.register("members", table)
    return con


def test_split_is_deterministic_and_respects_lengths() -> None:
    lengths = {f"p{i}": 3 + i for i in range(200)}
    first = split(lengths, seed=1, per_category=5)
    assert first == split(lengths, seed=1, per_category=5)
    assert first != split(lengths, seed=2, per_category=5)
    assert sorted(first.values()).count(100) == 5
    for pid, seeds in first.items():
        assert seeds in CATEGORIES and lengths[pid] >= seeds + MIN_HELD_OUT


def test_held_out_tracks_never_reach_the_model() -> None:
    """Replacing every held-out track of the test playlists with a song seen nowhere else changes no
    recommendation list, and none of those songs is ever recommended."""
    catalog = Catalog(CatalogConfig(seed=5, playlists=120, items_per_playlist=60, taste=True))
    rows = members_of(catalog)
    titles = titles_of(catalog)
    original = evaluate(connection(rows, titles), seed=3)
    firsts: dict[str, list[str]] = {}
    for pid, song, _ in sorted(rows, key=lambda r: (r[0], r[2])):
        if song not in firsts.setdefault(pid, []):
            firsts[pid].append(song)
    lengths = {pid: len(songs) for pid, songs in firsts.items()}
    per_category = max(1, min(100, len(lengths) * 3 // (10 * len(CATEGORIES))))
    chosen = split(lengths, 3, per_category)
    held = {(pid, song) for pid, seeds in chosen.items() for song in firsts[pid][seeds:]}
    assert held
    replaced = [(pid, f"leak-{pid}-{song}" if (pid, song) in held else song, pos) for pid, song, pos in rows]
    leaked = evaluate(connection(replaced, titles), seed=3)
    assert leaked.ranked == original.ranked
    recommended = {song for songs in leaked.ranked.values() for song in songs}
    assert not any(song.startswith("leak-") for song in recommended)
    # and the seeds themselves are never recommended back
    for pid, seeds in chosen.items():
        assert not set(firsts[pid][:seeds]) & set(original.ranked[pid])


def test_the_model_beats_popularity_twice_on_the_structured_catalog() -> None:
    catalog = Catalog(CatalogConfig(seed=2026, playlists=300, items_per_playlist=120, taste=True))
    result = evaluate(connection(members_of(catalog), titles_of(catalog)), seed=0)
    for category in result.categories:
        if category.seeds >= 5 and category.playlists:
            assert category.model.r_precision >= 2 * category.baseline.r_precision, category
            assert category.model.ndcg >= 2 * category.baseline.ndcg, category


def test_title_only_playlists_are_continued_from_playlists_named_alike() -> None:
    """With no seed, the title's words find the playlists named alike: their songs beat popularity, and
    without titles the model has nothing but popularity (the same lists as the baseline)."""
    catalog = Catalog(CatalogConfig(seed=2026, playlists=300, items_per_playlist=120, taste=True))
    rows = members_of(catalog)
    title_only = evaluate(connection(rows, titles_of(catalog)), seed=0).categories[0]
    assert title_only.seeds == 0 and title_only.playlists
    assert title_only.model.r_precision >= 1.5 * title_only.baseline.r_precision, title_only
    assert title_only.model.ndcg >= 1.2 * title_only.baseline.ndcg, title_only
    untitled = evaluate(connection(rows), seed=0).categories[0]
    assert untitled.model == untitled.baseline
