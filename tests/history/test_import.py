"""import-history end to end: real zips, folders and files written by the simulator's export generator, real
CLI processes, and the simulator's recently-played over real HTTP for the overlap with the API."""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import json
import zipfile
from pathlib import Path
from typing import Any

import duckdb
import pytest

from spotify_pipeline.query.engine import QueryEngine
from spotify_pipeline.simulator import Catalog as SimCatalog
from spotify_pipeline.simulator import CatalogConfig
from spotify_pipeline.simulator.history import write_export
from spotify_pipeline.tables.catalog import Catalog

from ..conftest import SimulatorFactory, cli, sim_env
from ..extract.test_user_login import do_login

USER = "alice"


@pytest.fixture
def sim_catalog() -> SimCatalog:
    return SimCatalog(CatalogConfig(playlists=3, items_per_playlist=20))


def rows(lake: Path, sql: str) -> list[tuple[Any, ...]]:
    with QueryEngine(Catalog(lake)) as engine:
        return [tuple(r) for r in engine.execute(sql).rows]


def import_ok(path: Path, lake: Path, *args: str, env: dict[str, str] | None = None) -> str:
    result = cli("import-history", str(path), "--lake", str(lake), *args, env=env)
    assert result.returncode == 0, result.stderr
    return result.stdout


def snapshots(lake: Path) -> dict[str, int | None]:
    catalog = Catalog(lake)
    return {name: catalog.snapshot_id(name) for name in catalog.table_names()}


def lake_files(lake: Path) -> dict[str, str]:
    return {
        str(p.relative_to(lake)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(lake.rglob("*"))
        if p.is_file() and not p.name.endswith(".lock")
    }


def test_every_format_in_a_zip_gives_one_listen_per_play(sim_catalog: SimCatalog, tmp_path: Path) -> None:
    export = write_export(
        sim_catalog, USER, tmp_path / "my_spotify_data.zip", plays=60, formats=("extended", "legacy", "account")
    )
    out = import_ok(export.path, tmp_path / "lake", "--user", USER)
    assert "account_music, account_podcast, extended, legacy" in out
    assert "Streaming_History_Video_2026.json" in out and "ReadMeFirst.pdf" in out and "Userdata.json" in out
    lake = tmp_path / "lake"
    expected = export.distinct_detailed_plays()
    got = rows(lake, "SELECT strftime(ended_at, '%Y-%m-%dT%H:%M:%SZ'), item_uri, ms_played FROM listens")
    assert len(got) == len(expected)  # legacy and account-data copies of every play matched away
    assert {(ts, uri or f"?{ms}") for ts, uri, ms in got} == expected
    kinds = dict(rows(lake, "SELECT item_type, count(*) FROM listens GROUP BY 1"))
    assert set(kinds) == {"track", "episode", "audiobook", "unknown"}
    assert rows(lake, "SELECT count(*) FROM listens WHERE ms_played = 0")[0][0] > 0
    assert rows(lake, "SELECT count(*) FROM listens WHERE incognito AND offline IS NOT NULL")[0][0] > 0
    assert rows(lake, "SELECT count(*) FROM listens WHERE offline")[0][0] > 0
    assert rows(lake, "SELECT DISTINCT source, user_id FROM listens") == [("export", USER)]
    # The song id is the track URI's ID, and only for tracks; unknown items have every name null.
    bad = rows(
        lake,
        "SELECT count(*) FROM listens WHERE (item_type = 'track') <> (song_id IS NOT NULL)"
        " OR (song_id IS NOT NULL AND item_uri <> 'spotify:track:' || song_id)"
        " OR (item_type = 'unknown' AND coalesce(track_name, artist_name, album_name, item_uri) IS NOT NULL)",
    )
    assert bad == [(0,)]
    # Non-ASCII names arrive intact.
    names = {r[0] for r in rows(lake, "SELECT track_name FROM listens WHERE track_name IS NOT NULL")}
    assert "Kapitel 5" in names and any(
        not n.isascii()
        for n in names | {r[0] for r in rows(lake, "SELECT album_name FROM listens WHERE album_name IS NOT NULL")}
    )
    check = cli("check", "--lake", str(lake))
    assert check.returncode == 0, check.stdout + check.stderr


@pytest.mark.parametrize("fmt", ["extended", "legacy", "account"])
def test_each_format_alone(sim_catalog: SimCatalog, tmp_path: Path, fmt: str) -> None:
    export = write_export(sim_catalog, USER, tmp_path / "export", plays=30, formats=(fmt,), form="folder")
    lake = tmp_path / "lake"
    args = () if fmt == "legacy" else ("--user", USER)  # the legacy files name their user
    import_ok(export.path, lake, *args)
    elements = [e for name, items in export.files.items() for e in items]
    distinct = {json.dumps(e, sort_keys=True) for e in elements}
    assert rows(lake, "SELECT count(*), min(user_id) FROM listens") == [(len(distinct), USER)]
    if fmt == "account":
        assert rows(lake, "SELECT count(*) FROM listens WHERE song_id IS NOT NULL OR item_uri IS NOT NULL") == [(0,)]
        assert rows(lake, "SELECT DISTINCT second(ended_at) FROM listens") == [(0,)]
    if fmt == "legacy":
        assert rows(lake, "SELECT count(*) FROM listens WHERE skipped IS NULL")[0][0] > 0


def test_a_single_json_file_and_a_file_under_another_name(sim_catalog: SimCatalog, tmp_path: Path) -> None:
    export = write_export(sim_catalog, USER, tmp_path / "export", plays=20, form="folder")
    first = next(p for p in (tmp_path / "export").rglob("Streaming_History_Audio_*.json"))
    import_ok(first, tmp_path / "lake1", "--user", USER)
    renamed = tmp_path / "history.json"
    renamed.write_bytes(first.read_bytes())
    import_ok(renamed, tmp_path / "lake2", "--user", USER)
    one = rows(tmp_path / "lake1", "SELECT listen_id FROM listens ORDER BY 1")
    assert one and one == rows(tmp_path / "lake2", "SELECT listen_id FROM listens ORDER BY 1")
    assert len(one) == len(export.files[str(first.relative_to(tmp_path / "export"))])


def test_private_fields_are_never_written(sim_catalog: SimCatalog, tmp_path: Path) -> None:
    export = write_export(sim_catalog, USER, tmp_path / "d.zip", plays=40, formats=("extended", "legacy", "account"))
    assert len(export.private_values) > 40
    lake = tmp_path / "lake"
    result = cli("import-history", str(export.path), "--lake", str(lake), "--user", USER)
    assert result.returncode == 0
    cli("query", "SELECT * FROM listens", "--lake", str(lake))
    texts = [result.stdout, result.stderr]
    for path in lake.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            if path.name.endswith(".parquet"):  # compressed: compare the values, every column
                texts.append(str(duckdb.connect().execute(f"SELECT * FROM read_parquet('{path}')").fetchall()))
            texts.append((gzip.decompress(data) if path.name.endswith(".gz") else data).decode("utf-8", "replace"))
    blob = "\n".join(texts)
    assert "198.51.100." not in blob and "privacy-test-agent" not in blob
    assert not [v for v in export.private_values if v in blob]
    assert "ip_addr" not in blob and "user_agent_decrypted" not in blob
    assert "trackdone" in blob  # the rest is kept


def test_reimport_changes_nothing_and_a_superset_adds_only_new_plays(sim_catalog: SimCatalog, tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    first = write_export(sim_catalog, USER, tmp_path / "a.zip", plays=40, per_file=15)
    import_ok(first.path, lake, "--user", USER)
    before_rows = rows(lake, "SELECT * FROM listens ORDER BY listen_id")
    before_snapshots, before_files = snapshots(lake), lake_files(lake)
    out = import_ok(first.path, lake, "--user", USER)
    assert "nothing new to import" in out
    assert snapshots(lake) == before_snapshots and lake_files(lake) == before_files
    # A later download: every earlier play again (split differently) plus 25 new ones.
    later = write_export(sim_catalog, USER, tmp_path / "b.zip", plays=65, per_file=20)
    import_ok(later.path, lake, "--user", USER)
    after = rows(lake, "SELECT * FROM listens ORDER BY listen_id")
    assert set(before_rows) <= set(after)
    assert len(after) == len(later.distinct_detailed_plays())


def test_export_and_api_overlap_counts_once(
    make_simulator: SimulatorFactory, tmp_path: Path, isolated_config: Path
) -> None:
    server = make_simulator(playlists=3, items_per_playlist=20)
    do_login(server, isolated_config)
    env = sim_env(server, tmp_path / "lake")
    server.add_plays(server.login_user, 30)  # 60 plays; the API serves the last 50: numbers 10..59
    assert cli("run", "--source", "recently-played", env=env).returncode == 0
    # The export has plays 0..39: 30 of them also came from the API.
    export = write_export(server.catalog, server.login_user, tmp_path / "d.zip", plays=40)
    out = import_ok(export.path, tmp_path / "lake", env=env)  # the user: the logged-in one
    assert f"for user {server.login_user}" in out
    lake = tmp_path / "lake"
    by_source = dict(rows(lake, "SELECT source, count(*) FROM listens GROUP BY 1"))
    assert by_source == {"export": len(export.distinct_detailed_plays()), "api": 20}  # plays 40..59 only
    # Every API play of the export's range became the export's richer record.
    api_times = {r[0] for r in rows(lake, "SELECT played_at FROM plays")}
    assert len(api_times) == 50
    listened = {r[0] for r in rows(lake, "SELECT ended_at FROM listens WHERE item_type = 'track'")}
    assert api_times <= listened
    # Order does not matter: a rebuild from the raw zone gives the same listens.
    before = rows(lake, "SELECT * EXCLUDE (imported_at) FROM listens ORDER BY listen_id")
    assert cli("transform", "--rebuild", env=env).returncode == 0
    assert rows(lake, "SELECT * EXCLUDE (imported_at) FROM listens ORDER BY listen_id") == before


def _event(
    ts: str, uri: str | None = "spotify:track:4uLU6hMCjMI75M1A2tKUQC", ms: int = 200_000, **kw: Any
) -> dict[str, Any]:
    return {
        "ts": ts,
        "ms_played": ms,
        "spotify_track_uri": uri,
        "master_metadata_track_name": "Never Gonna",
        "master_metadata_album_artist_name": "Rick",
        **kw,
    }


def test_matching_rule_edges(tmp_path: Path) -> None:
    """Detailed records: exact (user, item, ts). Account data: same names, end minute within one minute."""
    lake = tmp_path / "lake"
    detailed = [
        _event("2024-01-31T23:59:07Z"),
        _event("2024-01-31T23:59:09Z", ms=2000),  # a replay 2 s later: another listen
        _event("2024-01-31T23:59:07Z"),  # the same record again: one listen
        _event("2024-02-01T10:00:00Z", uri="spotify:track:0000000000000000000001"),
    ]
    (tmp_path / "Streaming_History_Audio_2024.json").write_text(json.dumps(detailed))
    import_ok(tmp_path / "Streaming_History_Audio_2024.json", lake, "--user", "u")
    assert rows(lake, "SELECT count(*) FROM listens") == [(3,)]
    account = [
        {"endTime": "2024-01-31 23:59", "artistName": "Rick", "trackName": "Never Gonna", "msPlayed": 200000},
        {"endTime": "2024-02-01 00:00", "artistName": "Rick", "trackName": "Never Gonna", "msPlayed": 1},  # +1 min
        {"endTime": "2024-02-01 00:01", "artistName": "Rick", "trackName": "Never Gonna", "msPlayed": 2},  # +2 min
        {"endTime": "2024-01-31 23:59", "artistName": "Other", "trackName": "Never Gonna", "msPlayed": 3},
    ]
    (tmp_path / "StreamingHistory_music_0.json").write_text(json.dumps(account))
    import_ok(tmp_path / "StreamingHistory_music_0.json", lake, "--user", "u")
    got = rows(lake, "SELECT source_format, ms_played FROM listens WHERE source_format = 'account' ORDER BY 2")
    assert got == [("account", 2), ("account", 3)]  # outside the minute, or another artist: new listens
    # Another user's identical records are that user's listens.
    import_ok(tmp_path / "Streaming_History_Audio_2024.json", lake, "--user", "v")
    assert rows(lake, "SELECT user_id, count(*) FROM listens GROUP BY 1 ORDER BY 1") == [("u", 5), ("v", 3)]


def test_api_play_matches_within_five_seconds_of_end_or_start(tmp_path: Path) -> None:
    """The API's played_at against an export's ts: end within 5 s, or start (ts - ms_played) within 5 s."""
    import duckdb

    from spotify_pipeline.history.listens import LISTENS_SQL

    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute(
        """CREATE TABLE staged_listen_events AS SELECT * FROM (VALUES
        ('e1', 'u', TIMESTAMPTZ '2024-01-01 12:00:00', 180000, 'track', 'a', 'spotify:track:a', 'A', 'X', NULL,
         NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 'export', 'extended', now()),
        ('a1', 'u', TIMESTAMPTZ '2024-01-01 12:00:05', NULL, 'track', 'a', 'spotify:track:a', 'A', 'X', NULL,
         NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 'api', 'api', now()),
        ('a2', 'u', TIMESTAMPTZ '2024-01-01 11:57:03', NULL, 'track', 'a', 'spotify:track:a', 'A', 'X', NULL,
         NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 'api', 'api', now()),
        ('a3', 'u', TIMESTAMPTZ '2024-01-01 12:00:06', NULL, 'track', 'a', 'spotify:track:a', 'A', 'X', NULL,
         NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 'api', 'api', now()),
        ('a4', 'u', TIMESTAMPTZ '2024-01-01 12:00:00', NULL, 'track', 'b', 'spotify:track:b', 'B', 'X', NULL,
         NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 'api', 'api', now())
        ) t(listen_id, user_id, ended_at, ms_played, item_type, song_id, item_uri, track_name, artist_name,
            album_name, reason_start, reason_end, shuffle, skipped, offline, incognito, platform, country, source,
            source_format, imported_at)"""
    )
    kept = sorted(r[0] for r in con.execute(f"SELECT listen_id FROM ({LISTENS_SQL})").fetchall())
    # a1: end + 5 s (same); a2: start + 3 s (same); a3: end + 6 s (another play); a4: another track.
    assert kept == ["a3", "a4", "e1"]


def _broken_zip(tmp_path: Path) -> Path:
    good = write_export(SimCatalog(CatalogConfig(playlists=2)), USER, tmp_path / "good.zip", plays=20).path
    data = good.read_bytes()
    bad = tmp_path / "truncated.zip"
    bad.write_bytes(data[: len(data) // 2])
    return bad


def _corrupt_member(tmp_path: Path) -> Path:
    good = write_export(SimCatalog(CatalogConfig(playlists=2)), USER, tmp_path / "good2.zip", plays=20).path
    data = bytearray(good.read_bytes())
    with zipfile.ZipFile(good) as archive:
        info = archive.infolist()[0]
    start = info.header_offset + 30 + len(info.filename.encode()) + 10
    data[start : start + 20] = bytes(20)
    bad = tmp_path / "corrupt.zip"
    bad.write_bytes(bytes(data))
    return bad


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda p: _write(p / "notes.txt", "hello"), "notes.txt: unknown JSON shape"),
        (lambda p: _zip(p / "other.zip", {"Userdata.json": "{}", "a.pdf": "x"}), "not a Spotify export"),
        (_broken_zip, "not a readable zip file"),
        (_corrupt_member, "is corrupt in the zip"),
        (lambda p: _write(p / "Streaming_History_Audio_1.json", '[{"ts": "2024-01-01T00:00:00Z", "ms_pl'), "truncated"),
        (lambda p: _write(p / "Streaming_History_Audio_1.json", '{"ts": 1}'), "unknown JSON shape"),
        (lambda p: _write(p / "Streaming_History_Audio_1.json", '[{"foo": 1}]'), "has no `ms_played`"),
        (lambda p: _write(p / "data.json", '[{"foo": 1}]'), "unknown JSON shape: not a Spotify streaming history"),
        (lambda p: _write(p / "Streaming_History_Audio_1.json", "[1, 2]"), "element 1 is not an object"),
        (
            lambda p: _write(p / "Streaming_History_Audio_1.json", '[{"ts": "yesterday", "ms_played": 1}]'),
            "`ts` is not a UTC time",
        ),
        (
            lambda p: _write(p / "Streaming_History_Audio_1.json", '[{"ts": "2024-01-01T00:00:00Z", "ms_played": -5}]'),
            "`ms_played` is not a whole number",
        ),
    ],
)
def test_bad_input_is_one_line_and_imports_nothing(tmp_path: Path, make: Any, expected: str) -> None:
    lake = tmp_path / "lake"
    good = write_export(SimCatalog(CatalogConfig(playlists=2)), USER, tmp_path / "first.zip", plays=10).path
    import_ok(good, lake, "--user", USER)
    before = lake_files(lake)
    bad_dir = tmp_path / "bad"
    bad_dir.mkdir()
    bad = make(bad_dir)
    result = cli("import-history", str(bad), "--lake", str(lake), "--user", USER)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and expected in lines[0], lines
    assert "nothing was imported" in lines[0] or "not a Spotify export" in lines[0] or "no such" in lines[0]
    assert lake_files(lake) == before


def test_a_bad_file_among_good_ones_imports_none_of_them(sim_catalog: SimCatalog, tmp_path: Path) -> None:
    export = write_export(sim_catalog, USER, tmp_path / "export", plays=30, form="folder", per_file=10)
    victim = sorted((tmp_path / "export").rglob("Streaming_History_Audio_*.json"))[-1]
    victim.write_text(victim.read_text()[:-40])
    result = cli("import-history", str(export.path), "--lake", str(tmp_path / "lake"), "--user", USER)
    assert result.returncode == 2 and victim.name in result.stderr
    assert not (tmp_path / "lake" / "raw").exists()


def test_no_user_anywhere_is_a_one_line_error(sim_catalog: SimCatalog, tmp_path: Path) -> None:
    export = write_export(sim_catalog, USER, tmp_path / "d.zip", plays=10)
    result = cli("import-history", str(export.path), "--lake", str(tmp_path / "lake"))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "Error: cannot tell whose listening history this is (pass --user ID (your Spotify username))"
    ]


def test_unknown_fields_are_kept_in_raw_and_reported_once(sim_catalog: SimCatalog, tmp_path: Path) -> None:
    export = write_export(sim_catalog, USER, tmp_path / "d.zip", plays=30, per_file=10, extra_field=True)
    lake = tmp_path / "lake"
    out = import_ok(export.path, lake, "--user", USER)
    assert out.count("new_field_2027") == 1
    parts = sorted(str(p) for p in lake.rglob("raw/history_export/**/*.parquet"))
    raw = duckdb.connect().execute(f"SELECT body.extra FROM read_parquet({parts})").fetchall()
    assert raw and all(json.loads(extra) == {"new_field_2027": "kept"} for (extra,) in raw)
    assert "new_field_2027" not in import_ok(export.path, lake, "--user", USER)


def test_rebuild_gives_the_same_listens(sim_catalog: SimCatalog, tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    import_ok(
        write_export(sim_catalog, USER, tmp_path / "a.zip", plays=30, formats=("account",)).path, lake, "--user", USER
    )
    import_ok(
        write_export(sim_catalog, USER, tmp_path / "b.zip", plays=50, formats=("extended", "legacy")).path,
        lake,
        "--user",
        USER,
    )
    query = "SELECT * EXCLUDE (imported_at) FROM listens ORDER BY listen_id"
    before = rows(lake, query)
    assert rows(lake, "SELECT count(*) FROM listens WHERE source_format = 'account'") == [(0,)]
    assert cli("transform", "--rebuild", "--lake", str(lake)).returncode == 0
    assert rows(lake, query) == before


def test_the_import_builds_exactly_the_rows_a_rebuild_from_raw_builds(sim_catalog: SimCatalog, tmp_path: Path) -> None:
    """The import's transform reads the parts it has just written, and a rebuild reads them again: the same
    rows, every column (names, nulls, non-ASCII, flags, imported_at), in every format."""
    lake = tmp_path / "lake"
    export = write_export(
        sim_catalog, USER, tmp_path / "d.zip", plays=80, per_file=15, formats=("extended", "legacy", "account")
    )
    import_ok(export.path, lake, "--user", USER)
    queries = ["SELECT * FROM listen_events ORDER BY listen_id", "SELECT * FROM listens ORDER BY listen_id"]
    before = [rows(lake, q) for q in queries]
    assert before[0] and before[1]
    assert cli("transform", "--rebuild", "--lake", str(lake)).returncode == 0
    assert [rows(lake, q) for q in queries] == before


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def _zip(path: Path, members: dict[str, str]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, text in members.items():
            archive.writestr(name, text)
    return path


def test_ts_is_read_as_utc(tmp_path: Path) -> None:
    (tmp_path / "Streaming_History_Audio_x.json").write_text(json.dumps([_event("2024-03-31T01:30:00Z")]))
    import_ok(tmp_path / "Streaming_History_Audio_x.json", tmp_path / "lake", "--user", "u")
    (ended,) = rows(tmp_path / "lake", "SELECT ended_at FROM listens")[0]
    assert ended == dt.datetime(2024, 3, 31, 1, 30, tzinfo=dt.UTC)


def test_benchmark_smoke_run() -> None:
    """bench/history.py runs end to end on a tiny download (no timing is asserted)."""
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "-m", "bench.history", "--plays", "500"], cwd=root, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout)
    assert out["listens"] == 500 and out["reimport_new_plays"] == 0
    assert out["floor_plays"] == 500  # the floor parsed the same plays
    # where the time went, phase by phase, each with wall and CPU seconds
    assert list(out["phases"]) == ["read_and_hash", "check_and_write_parts", "raw_run", "stage", "publish"]
    assert all(set(p) == {"wall_s", "cpu_s"} for p in out["phases"].values())
