"""Fault injection: real processes killed with SIGKILL, real HTTP faults, real files broken on purpose.

Every scenario ends with assertions on the final tables and the raw zone: either the data is complete and
identical to an uninterrupted run, or the run stopped cleanly and what was published before is intact.
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

from spotify_pipeline import pipeline
from spotify_pipeline.errors import QualityError
from spotify_pipeline.lake import LocalStorage
from spotify_pipeline.quality.checks import CHECKS
from spotify_pipeline.query.engine import QueryEngine
from spotify_pipeline.simulator import Fault, FaultPlan, SimulatedSpotify
from spotify_pipeline.tables.catalog import Catalog
from spotify_pipeline.tables.contract import DATA_TABLES
from spotify_pipeline.transform import transform

from ..conftest import SimulatorFactory, cli, comparable_tables, settings_for, sim_env

CATALOG = {"playlists": 8, "items_per_playlist": 90, "large_playlist_items": 900}


def run_args(server: SimulatedSpotify) -> list[str]:
    return ["run", *[a for pid in server.playlist_ids() for a in ("--playlist", pid)]]


@pytest.fixture
def source(make_simulator: SimulatorFactory) -> SimulatedSpotify:
    return make_simulator(**CATALOG)


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The tables of an uninterrupted run of the same catalog as `source` (same seed, so the same data):
    made once per module and worker, not per test."""
    from spotify_pipeline.simulator import Catalog as SimCatalog
    from spotify_pipeline.simulator import CatalogConfig

    server = SimulatedSpotify(SimCatalog(CatalogConfig(**CATALOG))).start()
    try:
        lake = tmp_path_factory.mktemp("reference")
        result = cli(*run_args(server), env=sim_env(server, lake))
        assert result.returncode == 0, result.stderr
        return comparable_tables(lake)
    finally:
        server.stop()


@pytest.mark.parametrize(
    "point",
    [
        "extract.page_stored:4",
        "raw.temp_written:2",
        "raw.part_written:3",
        "transform.table_committed:3",
        "transform.tables_committed",
    ],
)
def test_killed_run_then_rerun_equals_an_uninterrupted_run(
    source: SimulatedSpotify, reference: dict[str, Any], tmp_path: Path, point: str
) -> None:
    env = {**sim_env(source, tmp_path), "SPOTIFY_PIPELINE_RAW_PART_BYTES": "65536"}
    killed = cli(*run_args(source), env={**env, "SPOTIFY_PIPELINE_CRASH_AT": point})
    assert killed.returncode == -9, (killed.returncode, killed.stderr[-2000:])
    assert (tmp_path / "_state" / "run.lock").exists(), "the killed run left its lock behind"
    rerun = cli(*run_args(source), env=env)
    assert rerun.returncode == 0, rerun.stderr
    assert comparable_tables(tmp_path) == reference
    leftovers = [p for p in (tmp_path / "raw").rglob(".*.tmp")]
    assert len(leftovers) <= 1  # at most the temp file the kill interrupted; never linked into the zone
    check = cli("check", "--raw", env=env)
    assert check.returncode == 0, check.stdout


def test_rerun_after_a_kill_does_not_fetch_stored_pages_again(make_simulator: SimulatorFactory, tmp_path: Path) -> None:
    source = make_simulator(playlists=6, items_per_playlist=300, quirk_rate=0.0)
    env = {**sim_env(source, tmp_path), "SPOTIFY_PIPELINE_RAW_PART_BYTES": "32768", "SPOTIFY_PIPELINE_CONCURRENCY": "1"}
    killed = cli(*run_args(source), env={**env, "SPOTIFY_PIPELINE_CRASH_AT": "extract.page_stored:7"})
    assert killed.returncode == -9
    source.stats.reset()
    rerun = cli(*run_args(source), env=env)
    assert rerun.returncode == 0, rerun.stderr
    assert "interrupted" in rerun.stderr  # the warning about the recovered run
    pages = [1 + max(0, -(-(source.catalog.playlist_size(i) - 100) // 100)) for i in range(6)]
    resumed = source.stats.by_route["playlist_items"] + source.stats.by_route["playlist"]
    # Playlists completed before the kill cost one snapshot check each on the re-run, not their pages.
    assert resumed < sum(pages)
    with QueryEngine(Catalog(tmp_path)) as engine:
        counts = dict(engine.execute("SELECT playlist_id, count(*) FROM playlist_songs GROUP BY 1").rows)
    sizes = {source.catalog.id_of("playlist", i): source.catalog.playlist_size(i) for i in range(6)}
    assert counts == {pid: size for pid, size in sizes.items() if size}  # the empty playlist has no rows


def test_two_runs_at_once_one_is_refused(make_simulator: SimulatorFactory, tmp_path: Path) -> None:
    server = make_simulator(playlists=6, items_per_playlist=80, faults=FaultPlan(latency_ms=150))
    env = sim_env(server, tmp_path)
    first = subprocess.Popen(
        [sys.executable, "-m", "spotify_pipeline", *run_args(server)],
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lock = tmp_path / "_state" / "run.lock"
    deadline = time.monotonic() + 30
    while not lock.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    second = cli(*run_args(server), env=env)
    _, err = first.communicate(timeout=120)
    assert first.returncode == 0, err
    assert second.returncode == 6
    assert "another run" in second.stderr and f"pid {first.pid}" in second.stderr
    assert "Traceback" not in second.stderr


def test_stale_lock_from_a_killed_run_is_recovered(simulator: SimulatedSpotify, tmp_path: Path) -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    lock = tmp_path / "_state" / "run.lock"
    lock.parent.mkdir(parents=True)
    lock.write_text(
        json.dumps(
            {
                "pid": int(dead.stdout),
                "host": socket.gethostname(),
                "command": "run",
                "started_at": "2026-01-01T00:00:00+00:00",
            }
        )
    )
    result = cli(*run_args(simulator), env=sim_env(simulator, tmp_path))
    assert result.returncode == 0, result.stderr
    assert not lock.exists()


def test_http_faults_end_in_complete_data(source: SimulatedSpotify, reference: dict[str, Any], tmp_path: Path) -> None:
    source.faults.error_rate, source.faults.drop_rate, source.faults.latency_ms = 0.15, 0.05, 5
    for _ in range(3):
        source.faults.add(Fault("429", count=4, retry_after=1))
        source.faults.add(Fault("slow", count=3, delay_ms=300))
    result = cli(*run_args(source), env=sim_env(source, tmp_path))
    assert result.returncode == 0, result.stderr
    assert source.stats.faults["429"] == 12 and sum(source.stats.faults.values()) > 20
    assert comparable_tables(tmp_path) == reference


def test_a_429_storm_stops_cleanly_with_nothing_half_published(source: SimulatedSpotify, tmp_path: Path) -> None:
    env = sim_env(source, tmp_path)
    first = cli(*run_args(source), env=env)
    assert first.returncode == 0
    before = comparable_tables(tmp_path)
    source.mutate([1, 2, 3])
    large = source.playlist_ids()[1]
    source.faults.add(Fault("429", count=1000, retry_after=7200, path_prefix=f"/v1/playlists/{large}/items"))
    stopped = cli(*run_args(source), "--max-retry-wait", "10", env=env)
    assert stopped.returncode == 5
    assert "retry after" in stopped.stdout + stopped.stderr
    after = comparable_tables(tmp_path)
    catalog = source.catalog
    with QueryEngine(Catalog(tmp_path)) as engine:
        counts = dict(engine.execute("SELECT playlist_id, count(*) FROM playlist_songs GROUP BY 1").rows)
        runs = engine.execute("SELECT status, error FROM pipeline_runs ORDER BY started_at").rows
    # Every playlist is either fully updated or keeps its previous, complete membership; the one that
    # was rate-limited keeps the old one.
    old_large = [r for r in before["playlist_songs"] if r[0] == large]
    assert [r for r in after["playlist_songs"] if r[0] == large] == old_large
    for index in (2, 3):
        pid = catalog.id_of("playlist", index)
        old = [r for r in before["playlist_songs"] if r[0] == pid]
        new = [r for r in after["playlist_songs"] if r[0] == pid]
        assert new == old or counts[pid] == catalog.playlist_size(index)
    assert runs[-1][0] == "stopped" and "retry after" in runs[-1][1]
    assert cli("check", env=env).returncode == 0


def test_bad_api_bodies(make_simulator: SimulatorFactory, tmp_path: Path) -> None:
    server = make_simulator(playlists=4, items_per_playlist=50, large_playlist_items=300)
    env = sim_env(server, tmp_path)
    large = server.playlist_ids()[1]
    server.faults.add(Fault("unknown_field", count=1, path_prefix=f"/v1/playlists/{server.playlist_ids()[0]}"))
    server.faults.add(Fault("bad_type", count=1, path_prefix=f"/v1/playlists/{large}/items"))
    ok = cli(*run_args(server), env=env)
    assert ok.returncode == 0, ok.stderr
    assert "unknown field 'x_new_field'" in ok.stderr and "unexpected item type 'audiobook'" in ok.stderr
    before = comparable_tables(tmp_path)

    server.mutate([1])
    server.faults.add(Fault("missing_items", count=1, path_prefix=f"/v1/playlists/{large}/items"))
    missing = cli(*run_args(server), env=env)
    assert missing.returncode == 3 and "page without items" in missing.stdout
    server.mutate([1])
    server.faults.add(Fault("malformed", count=50, path_prefix=f"/v1/playlists/{large}/items"))
    # One retry, not the default six (~12 s of backoff): what is proved is that a body that stays malformed
    # stops the run cleanly with the tables untouched, not how often it is retried (tests/extract does that).
    (tmp_path / "one-retry.toml").write_text("max_retries = 1\n")
    env = {**env, "SPOTIFY_PIPELINE_CONFIG": str(tmp_path / "one-retry.toml")}
    malformed = cli(*run_args(server), "--max-retry-wait", "5", env=env)
    assert malformed.returncode == 3 and "malformed JSON" in malformed.stdout
    after = comparable_tables(tmp_path)
    assert [r for r in after["playlist_songs"] if r[0] == large] == [
        r for r in before["playlist_songs"] if r[0] == large
    ]
    assert cli("query", "SELECT count(*) FROM songs", env=env).returncode == 0


def test_corrupted_raw_file_is_named_and_tables_survive(simulator: SimulatedSpotify, tmp_path: Path) -> None:
    env = sim_env(simulator, tmp_path)
    assert cli(*run_args(simulator), env=env).returncode == 0
    before = comparable_tables(tmp_path)
    part = sorted((tmp_path / "raw" / "playlist_items").rglob("*.jsonl.gz"))[0]
    part.write_bytes(part.read_bytes()[:100])
    rebuilt = cli("transform", "--rebuild", env=env)
    assert rebuilt.returncode == 6 and "corrupted raw file" in rebuilt.stderr and part.name in rebuilt.stderr
    assert "Traceback" not in rebuilt.stderr
    assert comparable_tables(tmp_path) == before
    check = cli("check", "--raw", env=env)
    assert check.returncode == 8 and part.name in check.stdout


def test_broken_catalog_is_a_clear_error(simulator: SimulatedSpotify, tmp_path: Path) -> None:
    env = sim_env(simulator, tmp_path)
    assert cli(*run_args(simulator), env=env).returncode == 0
    (tmp_path / "catalog.db").write_bytes(b"this is not a sqlite database" * 100)
    result = cli("query", "SELECT 1", env=env)
    assert result.returncode == 6 and "catalog" in result.stderr and "--rebuild" in result.stderr
    assert "Traceback" not in result.stderr


def test_full_disk_is_a_clear_error_and_loses_nothing(simulator: SimulatedSpotify) -> None:
    # A small tmpfs of our own (outside pytest's tmp folders, which it cleans up later), filled to the brim.
    mount = Path(tempfile.mkdtemp(prefix="spotify-pipeline-full-disk-"))
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=6m", "tmpfs", str(mount)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here to fill: {mounted.stderr.decode().strip()}")
    try:
        env = sim_env(simulator, mount / "lake")
        first = cli("run", "--playlist", simulator.playlist_ids()[0], env=env)
        assert first.returncode == 0, first.stderr
        before = comparable_tables(mount / "lake")
        try:
            with open(mount / "filler", "wb") as filler:
                while True:
                    filler.write(b"\0" * 65536)
                    filler.flush()
        except OSError:
            pass  # full
        full = cli(*run_args(simulator), "--full", env=env)
        assert full.returncode == 6, full.stderr
        assert "disk is full" in full.stderr and "Traceback" not in full.stderr
        (mount / "filler").unlink()
        assert comparable_tables(mount / "lake") == before
        again = cli(*run_args(simulator), env=env)
        assert again.returncode == 0, again.stderr
    finally:
        subprocess.run(["umount", "--lazy", str(mount)], check=False)
        shutil.rmtree(mount, ignore_errors=True)


def test_broken_transform_is_stopped_by_the_quality_gate(simulator: SimulatorFactory, tmp_path: Path) -> None:
    server = simulator  # type: ignore[assignment]
    settings = settings_for(server, tmp_path)  # type: ignore[arg-type]
    pipeline.run(settings, server.playlist_ids())  # type: ignore[attr-defined]
    catalog = Catalog(tmp_path)
    snapshots = {name: catalog.snapshot_id(name) for name in DATA_TABLES}
    server.mutate([0])  # type: ignore[attr-defined]

    def duplicate_a_song(con: Any) -> None:
        con.execute("INSERT INTO staged_songs SELECT * FROM staged_songs LIMIT 1")

    with pytest.raises(QualityError) as info:
        pipeline.run(settings, server.playlist_ids(), stage_hook=duplicate_a_song)  # type: ignore[attr-defined]
    assert "songs.key_unique_not_null" in str(info.value)
    assert {name: catalog.snapshot_id(name) for name in DATA_TABLES} == snapshots
    with QueryEngine(Catalog(tmp_path)) as engine:
        status, error = engine.execute("SELECT status, error FROM pipeline_runs ORDER BY started_at DESC LIMIT 1").rows[
            0
        ]
        failed = engine.execute("SELECT check_name FROM quality_results WHERE NOT passed").rows
    assert status == "failed" and "songs.key_unique_not_null" in error
    assert ("songs.key_unique_not_null",) in failed


def test_failed_run_alerts_the_webhook(simulator: SimulatedSpotify, tmp_path: Path, webhook: Any) -> None:
    url, received = webhook
    env = {**sim_env(simulator, tmp_path), "SPOTIFY_PIPELINE_ALERT_WEBHOOK": url}
    ok = cli(*run_args(simulator), env=env)
    assert ok.returncode == 0 and received == []
    failed = cli("run", "--playlist", "0" * 22, env=env)
    assert failed.returncode == 3
    # Its only playlist failed, so the run failed (a run with some playlists extracted would be `partial`).
    assert len(received) == 1 and "failed" in received[0]["text"] and "not found" in received[0]["text"]
    # An unreachable webhook is logged, never fatal.
    env["SPOTIFY_PIPELINE_ALERT_WEBHOOK"] = "http://127.0.0.1:9/unreachable"
    again = cli("run", "--playlist", "0" * 22, env=env)
    assert again.returncode == 3 and "alert not delivered" in again.stderr


def test_runs_lists_history_with_reasons(simulator: SimulatedSpotify, tmp_path: Path) -> None:
    env = sim_env(simulator, tmp_path)
    cli(*run_args(simulator), env=env)
    cli("run", "--playlist", "0" * 22, env=env)
    out = cli("runs", "--format", "json", env=env)
    rows = json.loads(out.stdout)
    assert [r["status"] for r in rows] == ["failed", "succeeded"]  # the only playlist of the second failed
    assert "not found" in rows[0]["error"] and rows[1]["requests"] > 0
    assert rows[1]["checks_failed"] == f"0/{len(CHECKS)}"  # the collapse check needs 100+ rows before
    started = [dt.datetime.fromisoformat(r["started_at"]) for r in rows]
    assert started[0] > started[1]


def test_out_of_memory_is_a_clear_error_and_changes_nothing(
    simulator: SimulatedSpotify, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from spotify_pipeline.errors import LakeError

    settings = settings_for(simulator, tmp_path)
    pipeline.run(settings, simulator.playlist_ids())
    before = comparable_tables(tmp_path)
    monkeypatch.setenv("SPOTIFY_PIPELINE_MEMORY_LIMIT", "20MB")
    with pytest.raises(LakeError) as info:
        pipeline.run(settings, [], transform_only=True, rebuild=True)
    assert "ran out of memory" in str(info.value) and "SPOTIFY_PIPELINE_MEMORY_LIMIT" in str(info.value)
    monkeypatch.delenv("SPOTIFY_PIPELINE_MEMORY_LIMIT")
    assert comparable_tables(tmp_path) == before


def test_a_line_deleted_from_a_raw_part_is_caught_and_nothing_is_published(
    simulator: SimulatedSpotify, tmp_path: Path
) -> None:
    env = sim_env(simulator, tmp_path)
    assert cli(*run_args(simulator), env=env).returncode == 0
    before = comparable_tables(tmp_path)
    catalog = Catalog(tmp_path)
    snapshots = {name: catalog.snapshot_id(name) for name in DATA_TABLES}
    part = max((tmp_path / "raw" / "playlist_items").rglob("*.jsonl.gz"), key=lambda p: p.stat().st_size)
    lines = gzip.decompress(part.read_bytes()).splitlines(keepends=True)
    assert len(lines) >= 2
    part.write_bytes(gzip.compress(b"".join(lines[:-1])))  # valid gzip, one page of items fewer
    check = cli("check", "--raw", env=env)
    assert check.returncode == 8 and f"{part.name}: " in check.stdout and "the manifest says" in check.stdout
    rebuilt = cli("transform", "--rebuild", env=env)
    assert rebuilt.returncode == 6, rebuilt.stderr
    error = [line for line in rebuilt.stderr.splitlines() if part.name in line]
    assert len(error) == 1 and "its manifest says" in error[0], rebuilt.stderr
    assert "Traceback" not in rebuilt.stderr
    assert {name: Catalog(tmp_path).snapshot_id(name) for name in DATA_TABLES} == snapshots
    assert comparable_tables(tmp_path) == before


def test_positions_fewer_than_the_playlists_total_are_reported(
    make_simulator: SimulatorFactory, tmp_path: Path
) -> None:
    """A warning, not the gate: positions that are not the n items the extractor read never get this far (the
    transform sets such an extraction aside, tests/transform/test_quarantine.py), so a mismatch here is an odd
    `total` in a header, which must not stop every other playlist."""
    server = make_simulator(playlists=4, items_per_playlist=30)
    settings = settings_for(server, tmp_path)
    assert pipeline.run(settings, server.playlist_ids()).status == "succeeded"

    def drop_a_last_position(con: Any) -> None:
        # The last one: the remaining positions are still 0..n-2, so only the count against the total tells.
        con.execute(
            "DELETE FROM staged_playlist_songs s USING (SELECT playlist_id, max(position) AS last "
            "FROM staged_playlist_songs GROUP BY playlist_id ORDER BY playlist_id LIMIT 1) l "
            "WHERE s.playlist_id = l.playlist_id AND s.position = l.last"
        )

    result = transform(LocalStorage(tmp_path), Catalog(tmp_path), rebuild=True, stage_hook=drop_a_last_position)
    (check,) = [r for r in result.checks if r.check.name == "playlist_songs.positions_match_total"]
    assert (check.passed, check.failing_rows, check.check.severity) == (False, 1, "warning")
    with QueryEngine(Catalog(tmp_path)) as engine:
        recorded = engine.execute(
            "SELECT passed FROM quality_results WHERE check_name = 'playlist_songs.positions_match_total'"
            " ORDER BY checked_at DESC LIMIT 1"
        ).rows
    assert recorded == [(False,)]


def test_metadata_only_playlists_pass_the_positions_check(make_simulator: SimulatorFactory, tmp_path: Path) -> None:
    server = make_simulator(playlists=3, items_per_playlist=20, mode="development")
    report = pipeline.run(settings_for(server, tmp_path), server.playlist_ids())
    assert report.status == "succeeded" and report.transform is not None
    (result,) = [r for r in report.transform.checks if r.check.name == "playlist_songs.positions_match_total"]
    assert result.passed
    with QueryEngine(Catalog(tmp_path)) as engine:
        assert engine.execute("SELECT count(*) FROM playlists WHERE items_extracted_at IS NULL").rows == [(3,)]
