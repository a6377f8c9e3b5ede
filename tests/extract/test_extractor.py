"""Extraction against the simulator over real HTTP, into a real raw zone on disk."""

from __future__ import annotations

import collections
import json
import math
import threading
from pathlib import Path

import pytest

from spotify_pipeline import pipeline
from spotify_pipeline.config import Secret
from spotify_pipeline.errors import AuthError
from spotify_pipeline.extract import Extractor, SpotifyClient
from spotify_pipeline.extract.auth import StaticTokenAuth
from spotify_pipeline.lake import LocalStorage, RawZoneReader
from spotify_pipeline.simulator import Fault, FaultPlan, SimulatedSpotify

from ..conftest import SimulatorFactory, expected_enrichment, raw_item_positions, settings_for


def minimum_requests(server: SimulatedSpotify, playlists: list[int], batch: bool = True) -> int:
    """Fewest requests that can fetch these playlists in full and enrich them (embedded first page of 100)."""
    pages = sum(1 + max(0, math.ceil((server.catalog.playlist_size(i) - 100) / 100)) for i in playlists)
    artists, albums = expected_enrichment(server, playlists)
    if not batch:
        return pages + len(artists) + len(albums)
    return pages + math.ceil(len(artists) / 50) + math.ceil(len(albums) / 20)


def test_every_item_of_a_large_playlist_lands_exactly_once(make_simulator: SimulatorFactory, tmp_path: Path) -> None:
    server = make_simulator(playlists=4, items_per_playlist=30, large_playlist_items=3456)
    summary = pipeline.extract(settings_for(server, tmp_path), server.playlist_ids())
    assert summary.status == "succeeded"
    positions = raw_item_positions(tmp_path, summary.run_id)
    assert len(positions) == len(set(positions)), "no page stored twice"
    for index, pid in enumerate(server.playlist_ids()):
        size = server.catalog.playlist_size(index)
        assert sorted(p for q, p in positions if q == pid) == list(range(size))
    assert server.catalog.playlist_size(1) == 3456
    assert summary.items == sum(server.catalog.playlist_size(i) for i in range(4))


def test_quirks_are_stored_raw_and_counted(simulator: SimulatedSpotify, tmp_path: Path) -> None:
    summary = pipeline.extract(settings_for(simulator, tmp_path), simulator.playlist_ids())
    assert summary.status == "succeeded"
    assert {"track", "episode", "local", "unavailable"} <= set(summary.item_kinds)
    reader = RawZoneReader(LocalStorage(tmp_path))
    first_playlist = next(
        r
        for key in LocalStorage(tmp_path).list("raw/playlists/")
        for r in reader.records(key)
        if r.meta["playlist_id"] == simulator.playlist_ids()[0]
    )
    items = first_playlist.body["items"]["items"]
    assert any(i["item"] is None for i in items) and any(i["is_local"] for i in items)
    assert any(i["added_at"] is None for i in items)


def test_requests_are_within_five_percent_of_the_minimum(make_simulator: SimulatorFactory, tmp_path: Path) -> None:
    server = make_simulator(playlists=8, items_per_playlist=150, large_playlist_items=1234)
    summary = pipeline.extract(settings_for(server, tmp_path), server.playlist_ids())
    made = server.stats.api_requests
    minimum = minimum_requests(server, list(range(8)))
    assert summary.requests["total_requests"] == made
    assert made <= minimum * 1.05, (made, minimum)


def test_unchanged_playlists_cost_one_request_each_and_write_no_items(
    make_simulator: SimulatorFactory, tmp_path: Path
) -> None:
    server = make_simulator(playlists=6, items_per_playlist=120)
    settings = settings_for(server, tmp_path)
    pipeline.extract(settings, server.playlist_ids())
    server.stats.reset()
    second = pipeline.extract(settings, server.playlist_ids())
    assert server.stats.api_requests == 6
    assert dict(server.stats.by_route) == {"token": 1, "playlist": 6}
    assert second.playlists_unchanged == 6 and second.items == 0
    assert raw_item_positions(tmp_path, second.run_id) == []

    server.mutate([2])
    server.stats.reset()
    third = pipeline.extract(settings, server.playlist_ids())
    assert third.playlists_changed == 1 and third.playlists_unchanged == 5
    size = server.catalog.playlist_size(2)
    assert sorted(p for _, p in raw_item_positions(tmp_path, third.run_id)) == list(range(size))
    # one check per playlist, then the changed one's pages from offset 0; nothing enriched again (TTL)
    assert server.stats.by_route["playlist"] == 6
    assert server.stats.by_route["playlist_items"] == math.ceil(size / 100)
    assert "artists" not in server.stats.by_route or third.artists_enriched < 50

    full = pipeline.extract(settings, server.playlist_ids(), full=True)
    assert full.playlists_changed == 6


def test_faults_are_survived_without_losing_or_repeating_a_page(
    make_simulator: SimulatorFactory, tmp_path: Path
) -> None:
    server = make_simulator(
        playlists=5, items_per_playlist=60, large_playlist_items=1500, faults=FaultPlan(latency_ms=10)
    )
    for fault in (
        Fault("429", count=3, retry_after=1, path_prefix="/v1/playlists/"),
        Fault("503", count=4, path_prefix="/v1/playlists/"),
        Fault("500", count=1, path_prefix="/v1/albums"),
        Fault("drop", count=2, path_prefix="/v1/playlists/"),
        Fault("truncate", count=1, path_prefix="/v1/playlists/"),
        Fault("malformed", count=1, path_prefix="/v1/playlists/"),
    ):
        server.faults.add(fault)
    timer = threading.Timer(0.3, server.expire_tokens)
    timer.start()
    try:
        summary = pipeline.extract(settings_for(server, tmp_path, concurrency=2), server.playlist_ids())
    finally:
        timer.cancel()
    assert summary.status == "succeeded", summary.stop_reason or summary.failed
    assert sum(server.stats.faults.values()) == 12
    assert summary.requests["rate_limited"] == 3 and summary.requests["retries"] >= 12
    positions = raw_item_positions(tmp_path, summary.run_id)
    assert len(positions) == len(set(positions))
    assert len(positions) == sum(server.catalog.playlist_size(i) for i in range(5))


def test_token_expiry_mid_run_is_refreshed(make_simulator: SimulatorFactory, tmp_path: Path) -> None:
    server = make_simulator(playlists=3, large_playlist_items=2000, faults=FaultPlan(latency_ms=40))
    timer = threading.Timer(0.25, server.expire_tokens)
    timer.start()
    summary = pipeline.extract(settings_for(server, tmp_path, concurrency=1), server.playlist_ids())
    timer.join()
    assert summary.status == "succeeded"
    assert summary.requests["token_refreshes"] >= 1
    assert server.stats.by_route["token"] >= 2
    assert len(raw_item_positions(tmp_path, summary.run_id)) == sum(server.catalog.playlist_size(i) for i in range(3))


@pytest.mark.parametrize("kind", ["429", "quota"])
def test_retry_after_beyond_the_cap_stops_cleanly(make_simulator: SimulatorFactory, tmp_path: Path, kind: str) -> None:
    server = make_simulator(playlists=4, items_per_playlist=20)
    server.faults.add(Fault(kind, count=100, retry_after=3600, path_prefix=f"/v1/playlists/{server.playlist_ids()[2]}"))  # type: ignore[arg-type]
    summary = pipeline.extract(settings_for(server, tmp_path, max_retry_wait=5), server.playlist_ids())
    assert summary.status == "stopped"
    assert summary.stop_reason is not None and "retry after" in summary.stop_reason
    assert "3600s" in summary.stop_reason and "--max-retry-wait" in summary.stop_reason
    assert ("QUOTA_EXCEEDED" in summary.stop_reason) == (kind == "quota")
    manifest = RawZoneReader(LocalStorage(tmp_path)).manifests()[-1]
    assert manifest["status"] == "stopped"
    complete = [pid for pid, o in manifest["playlists"].items() if o["status"] == "complete"]
    assert server.playlist_ids()[2] not in complete
    # The next run (no fault) completes what is missing.
    server.faults.clear()
    again = pipeline.extract(settings_for(server, tmp_path), server.playlist_ids())
    assert again.status == "succeeded" and again.playlists_changed >= 1


def test_development_mode_enriches_one_id_at_a_time_once_each(make_simulator: SimulatorFactory, tmp_path: Path) -> None:
    server = make_simulator(playlists=4, items_per_playlist=50, mode="development")
    summary = pipeline.extract(settings_for(server, tmp_path), server.playlist_ids())
    # client credentials in Development Mode: no items, so metadata only and nothing to enrich
    assert sorted(summary.metadata_only) == sorted(server.playlist_ids())
    assert summary.items == 0 and server.stats.by_route.get("playlist_items", 0) == 0


def test_development_mode_user_token_gets_own_items_and_single_id_enrichment(
    make_simulator: SimulatorFactory, tmp_path: Path
) -> None:
    """A Development Mode user token: items of owned and collaborative playlists only, batch lookups refused
    (403), so every artist and album is fetched one ID at a time, and each ID exactly once."""
    server = make_simulator(playlists=8, items_per_playlist=60, mode="development")
    token, _ = server.issue_token(user="alice")
    client = SpotifyClient(server.api_url, StaticTokenAuth(Secret(token)))
    with client:
        summary = Extractor(client, LocalStorage(tmp_path)).run(server.playlist_ids())
    readable = [i for i in range(8) if server.catalog.can_edit("alice", i)]
    assert readable and len(readable) < 8
    assert sorted(summary.metadata_only) == sorted(server.playlist_ids()[i] for i in range(8) if i not in readable)
    assert summary.items == sum(server.catalog.playlist_size(i) for i in readable)
    artists, albums = expected_enrichment(server, readable)
    assert summary.batch_refused == ["albums", "artists"]
    # one refusal in all: once artists were refused, albums are not probed (Development Mode refuses every batch)
    assert server.stats.by_route["artists"] == 1 and server.stats.by_route.get("albums", 0) == 0
    assert summary.enrichment_skipped == {"batch_probes": 1}
    for route, wanted in (("artist", artists), ("album", albums)):
        counts = server.stats.ids_by_route[route]
        assert set(counts) == wanted
        assert set(counts.values()) == {1}, "each ID fetched once"


def test_legacy_server_is_read_through_tracks(make_simulator: SimulatorFactory, tmp_path: Path) -> None:
    server = make_simulator(playlists=3, large_playlist_items=350, legacy_items=True)
    settings = settings_for(server, tmp_path)
    first = pipeline.extract(settings, server.playlist_ids())
    assert first.items == sum(server.catalog.playlist_size(i) for i in range(3))
    server.mutate([1])
    second = pipeline.extract(settings, server.playlist_ids())
    assert second.playlists_changed == 1
    assert server.stats.by_route["playlist_items"] == 1  # tried once, 404, then /tracks for the rest
    assert len(raw_item_positions(tmp_path, second.run_id)) == server.catalog.playlist_size(1)


def test_missing_playlist_is_reported_and_the_others_complete(simulator: SimulatedSpotify, tmp_path: Path) -> None:
    missing = "0" * 22
    summary = pipeline.extract(settings_for(simulator, tmp_path), [missing, *simulator.playlist_ids()])
    assert summary.status == "partial"
    assert "not found (404)" in summary.failed[missing]
    assert summary.playlists_changed == 5


def test_wrong_credentials_fail_before_anything_is_extracted(simulator: SimulatedSpotify, tmp_path: Path) -> None:
    with pytest.raises(AuthError) as info:
        pipeline.extract(settings_for(simulator, tmp_path, client_secret="nope"), simulator.playlist_ids())
    assert "SPOTIFY_CLIENT_SECRET" in str(info.value) and "nope" not in str(info.value)


def test_raw_zone_is_never_rewritten(simulator: SimulatedSpotify, tmp_path: Path) -> None:
    settings = settings_for(simulator, tmp_path)
    pipeline.extract(settings, simulator.playlist_ids())
    before = {p: p.read_bytes() for p in (tmp_path / "raw").rglob("*") if p.is_file()}
    simulator.mutate([0, 1])
    pipeline.extract(settings, simulator.playlist_ids())
    after = {p: p.read_bytes() for p in (tmp_path / "raw").rglob("*") if p.is_file()}
    assert all(after[p] == data for p, data in before.items())
    assert len(after) > len(before)
    manifests = RawZoneReader(LocalStorage(tmp_path)).manifests()
    assert [m["status"] for m in manifests] == ["succeeded", "succeeded"]
    for manifest in manifests:
        files = {f["key"] for f in manifest["files"]}
        assert all(f"run_id={manifest['run_id']}/" in key for key in files)
        counts = collections.Counter(f["entity"] for f in manifest["files"])
        assert counts["playlist_items"] + counts["playlists"] + counts["playlist_checks"] >= 1
        json.dumps(manifest)


def test_a_playlist_edited_while_its_pages_are_read_is_not_stored_as_complete(
    make_simulator: SimulatorFactory, tmp_path: Path
) -> None:
    """Pages read across an edit are not one version of the playlist: the playlist fails this run (its pages
    stay in the raw zone, unused) and the next run reads it again, so stored positions always match a total."""
    server = make_simulator(playlists=3, items_per_playlist=20, large_playlist_items=350)
    large = server.playlist_ids()[1]
    size_before = server.catalog.playlist_size(1)
    server.faults.add(Fault("slow", count=1, delay_ms=1500, path_prefix=f"/v1/playlists/{large}/items"))
    settings = settings_for(server, tmp_path)
    result: dict[str, object] = {}
    worker = threading.Thread(target=lambda: result.update(summary=pipeline.extract(settings, server.playlist_ids())))
    worker.start()
    threading.Event().wait(0.7)  # the first page (embedded in the playlist object) is stored; page two waits
    server.mutate([1])
    worker.join(timeout=60)
    assert server.catalog.playlist_size(1) != size_before, "the edit must change the playlist's size"
    summary = result["summary"]
    assert isinstance(summary, pipeline.ExtractSummary)
    assert "changed while it was read" in summary.failed[large]
    manifest = RawZoneReader(LocalStorage(tmp_path)).manifests()[-1]
    assert manifest["playlists"][large]["status"] != "complete"
    again = pipeline.extract(settings, server.playlist_ids())
    assert again.failed == {} and again.status == "succeeded"


def key_tree(value: object) -> object:
    """The keys of a JSON value, nested (a list as the union of its elements' trees), without the values."""
    if isinstance(value, dict):
        return {k: key_tree(v) for k, v in value.items()}
    if isinstance(value, list):
        merged: dict[str, object] = {}
        for element in value:
            tree = key_tree(element)
            if isinstance(tree, dict):
                merged.update(tree)
        return [merged]
    return None


def shape_tree(shape: object) -> object:
    """The keys a transform shape (transform/raw.py) reads, in `key_tree`'s form."""
    if isinstance(shape, dict):
        return {k: shape_tree(v) for k, v in shape.items()}
    if isinstance(shape, list):
        return [shape_tree(shape[0])]
    return None


def test_a_snapshot_check_asks_only_for_what_the_transform_reads(
    make_simulator: SimulatorFactory, tmp_path: Path
) -> None:
    """Every run checks every unchanged playlist (~100k checks at 10M items), and the transform parses them all:
    the `fields` of a check name only what the transform reads of it (CHECKED_PLAYLIST), so nothing else is sent,
    stored or parsed. Over HTTP: the simulator filters as Spotify does."""
    from spotify_pipeline.transform.raw import CHECKED_PLAYLIST

    server = make_simulator(playlists=3, items_per_playlist=20)
    settings = settings_for(server, tmp_path)
    pipeline.extract(settings, server.playlist_ids())
    second = pipeline.extract(settings, server.playlist_ids())
    storage = LocalStorage(tmp_path)
    reader = RawZoneReader(storage)
    checks = [
        r
        for key in storage.list("raw/playlist_checks/")
        if f"run_id={second.run_id}/" in key
        for r in reader.records(key)
    ]
    assert len(checks) == 3
    read = shape_tree(CHECKED_PLAYLIST)
    assert isinstance(read, dict)

    def within(tree: object, allowed: object) -> bool:
        if isinstance(tree, dict):
            return isinstance(allowed, dict) and all(k in allowed and within(v, allowed[k]) for k, v in tree.items())
        if isinstance(tree, list):
            return isinstance(allowed, list) and within(tree[0], allowed[0])
        return allowed is None

    for check in checks:
        tree = key_tree(check.body)
        assert within(tree, read), tree
        assert check.body["snapshot_id"] and check.body["owner"]["id"] and check.body["images"][0]["url"]
