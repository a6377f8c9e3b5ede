"""Development Mode enrichment asks only for what adds something: counted from the simulator's own request log."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from spotify_pipeline.cli.console import extract_lines
from spotify_pipeline.config import Secret
from spotify_pipeline.extract import Extractor, SpotifyClient
from spotify_pipeline.extract.auth import StaticTokenAuth
from spotify_pipeline.extract.extractor import ExtractOptions, ExtractSummary
from spotify_pipeline.lake import LocalStorage
from spotify_pipeline.query.engine import QueryEngine
from spotify_pipeline.results import ExtractResult
from spotify_pipeline.simulator import SimulatedSpotify
from spotify_pipeline.tables.catalog import Catalog
from spotify_pipeline.transform import transform

from ..conftest import SimulatorFactory, expected_enrichment

TABLES = ("songs", "albums", "artists", "album_artists", "song_artists", "playlists", "playlist_songs")


def _run(server: SimulatedSpotify, lake: Path, tracks: tuple[str, ...], skip: bool = True) -> ExtractSummary:
    token, _ = server.issue_token(user="alice")
    options = ExtractOptions(tracks=tracks, track_budget=len(tracks) + 5)
    with SpotifyClient(server.api_url, StaticTokenAuth(Secret(token))) as client:
        extractor = Extractor(client, LocalStorage(lake), options)
        extractor.skip_needless = skip
        return extractor.run(server.playlist_ids())


def _tables(lake: Path) -> dict[str, list[tuple[object, ...]]]:
    """Every kept value except when and by which run it was seen (those differ between any two runs)."""
    out: dict[str, list[tuple[object, ...]]] = {}
    with QueryEngine(Catalog(lake)) as engine:
        for table in TABLES:
            result = engine.execute(f"SELECT * FROM {table}")
            keep = [i for i, c in enumerate(result.columns) if not c.endswith("_at") and c != "run_id"]
            out[table] = sorted(tuple(str(row[i]) for i in keep) for row in result.rows)
    return out


@dataclass
class DevModeLake:
    """A simulator in Development Mode (alice may read only some playlists) and the songs alice listened to."""

    server: SimulatedSpotify
    readable: list[int]
    in_items: list[str]  # five listened songs the readable playlists carry
    elsewhere: list[str]  # three they do not

    @property
    def listened(self) -> tuple[str, ...]:
        return tuple(self.in_items + self.elsewhere)


@pytest.fixture
def devmode(make_simulator: SimulatorFactory) -> DevModeLake:
    server = make_simulator(playlists=8, items_per_playlist=60, mode="development")
    readable = [i for i in range(8) if server.catalog.can_edit("alice", i)]
    catalog = server.catalog
    carried = {e.ref for i in readable for e in catalog.entries(i) if e.kind == "track"}
    in_items = sorted(catalog.id_of("track", t) for t in carried)[:5]
    elsewhere = [catalog.id_of("track", t) for t in range(catalog.n_tracks) if t not in carried][:3]
    return DevModeLake(server, readable, in_items, elsewhere)


def test_development_mode_skips_refused_batches_and_tracks_the_items_carry(
    devmode: DevModeLake, tmp_path: Path
) -> None:
    server = devmode.server
    summary = _run(server, tmp_path, devmode.listened)
    artists, albums = expected_enrichment(server, devmode.readable)
    # One refused batch probe in all: albums (and, as before, tracks) are not probed once artists were refused.
    assert server.stats.by_route["artists"] == 1
    assert server.stats.by_route.get("albums", 0) == 0 and server.stats.by_route.get("tracks", 0) == 0
    assert set(server.stats.ids_by_route["artist"]) == artists and set(server.stats.ids_by_route["album"]) == albums
    # Listened songs the playlist items already carried in full are not looked up again.
    looked_up = set(server.stats.ids_by_route["track"])
    assert looked_up.isdisjoint(devmode.in_items) and set(devmode.elsewhere) <= looked_up
    assert summary.enrichment_skipped == {"batch_probes": 1, "tracks_in_items": 5}
    assert summary.batch_refused == ["albums", "artists", "tracks"]
    # The run summary says so, in text and in `--format json`.
    result = ExtractResult.of(summary)
    assert result.requests.saved == 6 and result.as_dict()["requests"]["saved"] == 6
    line = next(x for x in extract_lines(summary) if x.startswith("requests:"))
    assert line.endswith("; saved 6 (batch_probes 1, tracks_in_items 5)"), line


def test_development_mode_tables_are_the_same_with_fewer_requests(devmode: DevModeLake, tmp_path: Path) -> None:
    server = devmode.server
    sent: dict[bool, int] = {}
    for skip in (False, True):
        before = server.stats.api_requests
        _run(server, tmp_path / str(skip), devmode.listened, skip=skip)
        sent[skip] = server.stats.api_requests - before
        transform(LocalStorage(tmp_path / str(skip)), Catalog(tmp_path / str(skip)))
    assert sent[True] == sent[False] - 1 - len(devmode.in_items)  # the albums batch probe, the carried songs
    old, new = _tables(tmp_path / "False"), _tables(tmp_path / "True")
    assert all(old[t] for t in TABLES) and old == new
