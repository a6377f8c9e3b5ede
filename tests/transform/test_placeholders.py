"""Placeholders are not facts: Spotify's epoch `added_at` and empty `added_by.id` are stored as NULL, the
simulator never dates an item in the future, and a warning check flags future or epoch dates if they arrive."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb

from spotify_pipeline import pipeline
from spotify_pipeline.quality.checks import CHECKS
from spotify_pipeline.query.engine import QueryEngine
from spotify_pipeline.simulator import Catalog as SimCatalog
from spotify_pipeline.simulator import CatalogConfig
from spotify_pipeline.tables.catalog import Catalog

from ..conftest import SimulatorFactory, settings_for

EPOCH_PLACEHOLDER = "1970-01-01T00:00:00Z"  # what Spotify sends for very old and editorial positions


def test_epoch_added_at_and_empty_added_by_are_stored_as_null(make_simulator: SimulatorFactory, tmp_path: Path) -> None:
    server = make_simulator(playlists=3, items_per_playlist=20, quirk_rate=0.0)
    entries = [e for i in range(3) for e in server.catalog.entries(i)]
    placeholders = [e for e in entries if e.added_at == EPOCH_PLACEHOLDER]
    assert placeholders and all(e.added_by == "" for e in placeholders), "the catalog serves Spotify's placeholder"
    assert any(e.added_at is None for e in entries), "and the null form"
    report = pipeline.run(settings_for(server, tmp_path), server.playlist_ids())
    assert report.status == "succeeded"
    with QueryEngine(Catalog(tmp_path)) as engine:
        nulls = engine.execute(
            "SELECT count(*) FILTER (WHERE added_at IS NULL), count(*) FILTER (WHERE added_by IS NULL) "
            "FROM playlist_songs"
        ).rows[0]
        bad = engine.execute(
            "SELECT count(*) FROM playlist_songs WHERE added_at < TIMESTAMPTZ '1971-01-01 00:00:00+00' OR added_by = ''"
        ).rows[0][0]
    undated = sum(1 for e in entries if e.added_at in (None, EPOCH_PLACEHOLDER))
    unknown_adder = sum(1 for e in entries if not e.added_by)
    assert nulls == (undated, unknown_adder)
    assert bad == 0


def test_no_generated_date_is_in_the_future() -> None:
    now = dt.datetime.now(dt.UTC)
    # A large playlist (the bench's size) and many changes used to date items years ahead (2034).
    catalog = SimCatalog(CatalogConfig(playlists=4, items_per_playlist=50, large_playlist_items=100_000))
    catalog.mutate([0, 1, 2] * 700)
    dates = [
        dt.datetime.fromisoformat(e.added_at.replace("Z", "+00:00"))
        for i in range(4)
        for e in catalog.entries(i)
        if e.added_at and e.added_at != EPOCH_PLACEHOLDER
    ]
    dates += [dt.datetime.fromisoformat(a.replace("Z", "+00:00")) for _, a in catalog.saved_tracks("alice")]
    assert max(dates) <= now
    # the positions of a playlist never changed are added in order (its growth chart rises), deterministically
    fresh = SimCatalog(CatalogConfig(playlists=4, items_per_playlist=50, large_playlist_items=100_000))
    big = [e.added_at for e in fresh.entries(1) if e.added_at and e.added_at != EPOCH_PLACEHOLDER]
    assert big == sorted(big) and len(set(big)) > 90_000
    same = [e.added_at for e in SimCatalog(fresh.config).entries(1) if e.added_at and e.added_at != EPOCH_PLACEHOLDER]
    assert big == same


def _warnings() -> dict[str, str]:
    return {c.name: c.sql for c in CHECKS if c.table == "playlist_songs" and c.severity == "warning"}


def test_a_warning_check_flags_future_and_epoch_added_at() -> None:
    checks = _warnings()
    assert {"playlist_songs.added_at_not_in_future", "playlist_songs.added_at_not_epoch"} <= set(checks)
    con = duckdb.connect()
    con.execute("CREATE TABLE ps (playlist_id VARCHAR, position INTEGER, added_at TIMESTAMPTZ)")
    now = dt.datetime.now(dt.UTC)
    rows = [
        ("p", 0, now - dt.timedelta(days=400)),
        ("p", 1, now + dt.timedelta(minutes=5)),  # clock skew, not a future date
        ("p", 2, now + dt.timedelta(days=3000)),
        ("p", 3, dt.datetime(1970, 1, 1, tzinfo=dt.UTC)),
        ("p", 4, None),
    ]
    con.executemany("INSERT INTO ps VALUES (?, ?, ?)", rows)
    future = con.execute(checks["playlist_songs.added_at_not_in_future"].format(playlist_songs="ps")).fetchone()
    epoch = con.execute(checks["playlist_songs.added_at_not_epoch"].format(playlist_songs="ps")).fetchone()
    assert future == (1,) and epoch == (1,)


def test_the_published_tables_pass_the_date_warnings(make_simulator: SimulatorFactory, tmp_path: Path) -> None:
    server = make_simulator(playlists=3, items_per_playlist=20, large_playlist_items=3000)
    report = pipeline.run(settings_for(server, tmp_path), server.playlist_ids())
    assert report.status == "succeeded"
    with QueryEngine(Catalog(tmp_path)) as engine:
        latest = engine.execute("SELECT max(added_at), min(added_at) FROM playlist_songs").rows[0]
        results = dict(
            engine.execute(
                "SELECT check_name, passed FROM quality_results WHERE check_name LIKE 'playlist_songs.added_at%'"
            ).rows
        )
    assert latest[0] <= dt.datetime.now(dt.UTC) and latest[1].year >= 2008
    assert results == {"playlist_songs.added_at_not_in_future": True, "playlist_songs.added_at_not_epoch": True}
