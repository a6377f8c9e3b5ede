"""Table history retention: old snapshots expire, the files only they used are deleted, nothing else is."""

from __future__ import annotations

import datetime as dt
import itertools
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from spotify_pipeline import pipeline
from spotify_pipeline.cli.console import history_lines
from spotify_pipeline.lake import LocalStorage
from spotify_pipeline.tables.catalog import TABLE_PROPERTIES, Catalog
from spotify_pipeline.tables.contract import DATA_TABLES
from spotify_pipeline.tables.retention import _plan, expire_history
from spotify_pipeline.transform import transform

from ..conftest import SimulatorFactory, comparable_tables, kept_metadata_files, settings_for
from ..conftest import referenced_files as referenced_uris


def warehouse_files(lake: Path) -> set[Path]:
    return {p for p in (lake / "warehouse").rglob("*") if p.is_file() and not p.name.endswith(".metadata.json")}


def referenced_files(catalog: Catalog) -> set[Path]:
    return {Path(uri.removeprefix("file://")) for uri in referenced_uris(catalog)}


def snapshot_rows(catalog: Catalog, name: str, snapshot_id: int) -> list[Any]:
    return sorted(catalog.table(name).scan(snapshot_id=snapshot_id).to_arrow().to_pylist(), key=repr)


def test_old_snapshots_expire_and_only_their_files_go(make_simulator: SimulatorFactory, tmp_path: Path) -> None:
    server = make_simulator(playlists=4, items_per_playlist=30)
    settings = settings_for(server, tmp_path)
    catalog = Catalog(tmp_path)
    current = []  # the songs snapshot current after each run
    for changed in ([], [1], [2, 3]):
        server.mutate(changed) if changed else None
        report = pipeline.run(settings, server.playlist_ids())
        assert report.status == "succeeded"
        assert report.history is not None and report.history.snapshots == 0, "7 days by default: all are recent"
        current.append(Catalog(tmp_path).snapshot_id("songs"))
    tables = comparable_tables(tmp_path)
    before = warehouse_files(tmp_path)
    assert referenced_files(catalog) == before

    # Keep the snapshots from the one current after the second run on: older ones expire, it stays readable.
    songs = Catalog(tmp_path).table("songs").metadata.snapshots
    second = next(s for s in songs if s.snapshot_id == current[1])
    second_rows = snapshot_rows(catalog, "songs", second.snapshot_id)
    cutoff_ms = second.timestamp_ms + 5  # just after it was committed: what it replaced is history by then
    now = dt.datetime.fromtimestamp(cutoff_ms / 1000, dt.UTC) + dt.timedelta(days=1)
    # Every table's snapshots replaced before that moment expire (a snapshot is history from its child's
    # commit on), but never a table's current one (a table a run left unchanged keeps an old current one).
    old = Catalog(tmp_path)
    expiring = 0
    for n in old.table_names():
        line = sorted(old.table(n).metadata.snapshots, key=lambda s: s.timestamp_ms)
        expiring += sum(1 for _, child in itertools.pairwise(line) if child.timestamp_ms < cutoff_ms)
    result = expire_history(Catalog(tmp_path), keep_days=1, now=now)

    catalog = Catalog(tmp_path)
    remaining = [s.snapshot_id for s in catalog.table("songs").metadata.snapshots]
    assert remaining == [s.snapshot_id for s in songs if s.timestamp_ms >= second.timestamp_ms]
    assert current[0] not in remaining and current[1] in remaining
    assert snapshot_rows(catalog, "songs", second.snapshot_id) == second_rows  # its files are all still there
    after = warehouse_files(tmp_path)
    assert after == referenced_files(catalog), "nothing referenced is missing, nothing unreferenced is left"
    assert after < before and result.files_deleted == len(before - after)
    assert result.snapshots == expiring > 0
    assert comparable_tables(tmp_path) == tables
    assert history_lines(result)[0].startswith(f"table history: expired {result.snapshots} old snapshot(s)")

    # Everything but the current snapshot; then nothing is left to do.
    result = expire_history(Catalog(tmp_path), keep_days=0, now=dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1))
    catalog = Catalog(tmp_path)
    assert result.data_bytes_deleted > 0  # the data files the third run replaced
    left = {n: len(catalog.table(n).metadata.snapshots) for n in catalog.table_names()}
    assert set(left.values()) <= {0, 1}, left  # 0: created, never filled
    assert warehouse_files(tmp_path) == referenced_files(catalog)
    assert comparable_tables(tmp_path) == tables
    assert expire_history(catalog, keep_days=0).snapshots == 0


def test_the_snapshot_a_run_replaced_stays_for_the_retention_however_old_it_is(
    make_simulator: SimulatorFactory, tmp_path: Path
) -> None:
    """Runs further apart than the retention (say a daily run, 6 hours kept; here scaled to the seconds
    between two runs): the snapshot the run replaced was committed before the retention, but it was current
    until a moment ago, and a reader that opened the table just before the commit may still be reading its
    files. It stays for the retention, then goes."""
    server = make_simulator(playlists=3, items_per_playlist=20)
    settings = settings_for(server, tmp_path)
    pipeline.run(settings, server.playlist_ids())
    before = Catalog(tmp_path).snapshot_id("playlist_songs")
    rows = snapshot_rows(Catalog(tmp_path), "playlist_songs", before)
    server.mutate([1])
    pipeline.run(settings, server.playlist_ids())
    catalog = Catalog(tmp_path)
    replacing = catalog.table("playlist_songs").current_snapshot()
    assert replacing is not None and replacing.snapshot_id != before
    committed = dt.datetime.fromtimestamp(replacing.timestamp_ms / 1000, dt.UTC)
    older = next(s for s in catalog.table("playlist_songs").metadata.snapshots if s.snapshot_id == before)
    gap = dt.timedelta(milliseconds=replacing.timestamp_ms - older.timestamp_ms)  # the runs' distance, scaled:
    keep = gap / 2  # a retention shorter than the time between runs
    # Looked at a quarter of the gap after the run: what came before it is older than the retention, but
    # what the run replaced was current a moment ago.
    expire_history(catalog, keep_days=keep / dt.timedelta(days=1), now=committed + gap / 4)
    catalog = Catalog(tmp_path)
    assert snapshot_rows(catalog, "playlist_songs", before) == rows
    assert warehouse_files(tmp_path) == referenced_files(catalog)
    expire_history(catalog, keep_days=keep / dt.timedelta(days=1), now=committed + keep + dt.timedelta(seconds=1))
    catalog = Catalog(tmp_path)
    assert before not in [s.snapshot_id for s in catalog.table("playlist_songs").metadata.snapshots]
    assert warehouse_files(tmp_path) == referenced_files(catalog)


def test_a_run_applies_the_configured_retention(make_simulator: SimulatorFactory, tmp_path: Path) -> None:
    server = make_simulator(playlists=3, items_per_playlist=20)
    settings = settings_for(server, tmp_path, table_history_days=0)
    pipeline.run(settings, server.playlist_ids())
    first = warehouse_files(tmp_path)
    server.mutate([0])
    report = pipeline.run(settings, server.playlist_ids())
    assert report.history is not None and report.history.snapshots > 0
    assert report.history.files_deleted > 0
    catalog = Catalog(tmp_path)
    # A keyed replace is one snapshot (merge-on-read): count what is left, each table's current snapshot.
    left = {n: len(catalog.table(n).metadata.snapshots) for n in DATA_TABLES if n in catalog.table_names()}
    assert set(left.values()) <= {0, 1}, left  # 0: created, never filled
    assert warehouse_files(tmp_path) == referenced_files(catalog)
    assert not any(p.suffix == ".parquet" for p in first & warehouse_files(tmp_path) if "songs" in p.parts)
    # A negative retention keeps every snapshot.
    snapshots = len(catalog.table("songs").metadata.snapshots)
    server.mutate([1])
    kept = pipeline.run(settings_for(server, tmp_path, table_history_days=-1), server.playlist_ids())
    assert kept.history is not None and kept.history.snapshots == 0
    assert len(Catalog(tmp_path).table("songs").metadata.snapshots) > snapshots


def test_earlier_metadata_files_are_bounded_also_for_tables_created_before_the_setting(
    make_simulator: SimulatorFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = make_simulator(playlists=3, items_per_playlist=20)
    settings = settings_for(server, tmp_path)
    pipeline.run(settings, server.playlist_ids())
    tables = comparable_tables(tmp_path)
    catalog = Catalog(tmp_path)
    assert catalog.table("songs").properties.items() >= TABLE_PROPERTIES.items()
    # A lake from before the setting: its tables lack the properties and keep every metadata file.
    for name in catalog.table_names():
        catalog.table(name).transaction().remove_properties(*TABLE_PROPERTIES).commit_transaction()
    monkeypatch.setitem(TABLE_PROPERTIES, "write.metadata.previous-versions-max", "2")
    for _ in range(4):
        transform(LocalStorage(tmp_path), Catalog(tmp_path), rebuild=True)
    catalog = Catalog(tmp_path)
    # Every table a transform writes (pipeline_runs is written by `run`; a table no run filled is not created).
    written = [name for name in DATA_TABLES if name in catalog.table_names()]
    assert {"songs", "playlist_songs", "listens"} <= set(written)
    for name in written:
        table = catalog.table(name)
        assert table.properties.items() >= TABLE_PROPERTIES.items(), name
        on_disk = {p.as_uri() for p in (tmp_path / "warehouse").rglob(f"{name}/metadata/*.metadata.json")}
        assert len(on_disk) == 3, name  # the current one and two earlier ones
        assert on_disk == kept_metadata_files(table)
    assert comparable_tables(tmp_path) == tables


def snap(snapshot_id: int, parent: int | None, ts: int) -> Any:
    return SimpleNamespace(snapshot_id=snapshot_id, parent_snapshot_id=parent, timestamp_ms=ts)


def ids(snapshots: list[Any]) -> list[int]:
    return sorted(s.snapshot_id for s in snapshots)


def test_the_plan_reads_one_kept_snapshot_on_a_line_and_all_of_them_after_a_rollback() -> None:
    one, two, three, four = snap(1, None, 10), snap(2, 1, 20), snap(3, 2, 30), snap(4, 3, 40)
    line = [one, two, three, four]
    # A snapshot is history from its replacement on: 2 was current until 30, after the cutoff 25, so it stays.
    expired, spare = _plan(line, four, cutoff_ms=25)
    assert ids(expired) == [1] and ids(spare) == [2]
    expired, spare = _plan(line, four, cutoff_ms=35)
    assert ids(expired) == [1, 2] and ids(spare) == [3]
    assert _plan(line, four, cutoff_ms=5) == ([], [])
    assert _plan(line, four, cutoff_ms=20) == ([], []), "1 was current until 20"
    expired, spare = _plan(line, four, cutoff_ms=100)
    assert ids(expired) == [1, 2, 3] and ids(spare) == [4], "never the current one"
    # Runs further apart than the retention: the snapshot just replaced stays the retention's length.
    daily = [snap(1, None, 0), snap(2, 1, 86_400_000)]
    assert _plan(daily, daily[1], cutoff_ms=86_400_000 - 6 * 3_600_000) == ([], [])
    # A clock that went back: expiry stays a prefix of the line (2 goes with 3, replaced at 30).
    skewed = [one, snap(2, 1, 50), three, four]
    expired, spare = _plan(skewed, four, cutoff_ms=45)
    assert ids(expired) == [1, 2, 3] and ids(spare) == [4]
    # Rolled back to 2: 3 and 4 are off the line, kept, and their files spared too.
    expired, spare = _plan(line, two, cutoff_ms=25)
    assert ids(expired) == [1] and ids(spare) == [2, 3, 4]
    assert _plan(line, two, cutoff_ms=35) == _plan(line, two, cutoff_ms=25), "3 was current until 40"
    expired, spare = _plan(line, two, cutoff_ms=45)
    assert ids(expired) == [1, 3, 4] and ids(spare) == [2]


def test_after_a_rollback_the_snapshots_off_the_line_stay_readable(
    make_simulator: SimulatorFactory, tmp_path: Path
) -> None:
    server = make_simulator(playlists=3, items_per_playlist=20)
    settings = settings_for(server, tmp_path)
    current = []
    for changed in ([], [1], [2]):
        server.mutate(changed) if changed else None
        pipeline.run(settings, server.playlist_ids())
        current.append(Catalog(tmp_path).snapshot_id("songs"))
    catalog = Catalog(tmp_path)
    third_rows = snapshot_rows(catalog, "songs", current[2])
    catalog.table("songs").manage_snapshots().rollback_to_snapshot(current[1]).commit()
    second = next(s for s in catalog.table("songs").metadata.snapshots if s.snapshot_id == current[1])
    # Just after the second was committed: the first, which it replaced, is history by then.
    now = dt.datetime.fromtimestamp((second.timestamp_ms + 5) / 1000, dt.UTC) + dt.timedelta(days=1)
    result = expire_history(Catalog(tmp_path), keep_days=1, now=now)
    assert result.snapshots > 0
    catalog = Catalog(tmp_path)
    assert snapshot_rows(catalog, "songs", current[2]) == third_rows  # off the line, newer than the cutoff
    assert current[0] not in [s.snapshot_id for s in catalog.table("songs").metadata.snapshots]
    assert warehouse_files(tmp_path) == referenced_files(catalog)
