"""The command line as a user runs it: real processes, real HTTP to the simulator, real files."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from spotify_pipeline.cli.main import main
from spotify_pipeline.simulator import SimulatedSpotify

from ..conftest import SimulatorFactory, cli, sim_env

SECRET = "s3cr3t-Value-that-must-never-leak"


def test_every_command_is_documented() -> None:
    runner = CliRunner()
    for name, command in main.commands.items():
        assert command.help, f"{name} has no help text"
        result = runner.invoke(main, [name, "--help"])
        assert result.exit_code == 0 and "Usage:" in result.output
        for param in command.params:
            if isinstance(param, __import__("click").Option) and param.name != "help":
                assert param.help, f"{name} --{param.name} has no help"


def test_missing_credentials_is_one_clear_line(tmp_path: Path) -> None:
    result = cli("extract", "--playlist", "3ejgERCGwk0Xn85AqKL5Yp", "--lake", str(tmp_path))
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert "SPOTIFY_CLIENT_ID" in result.stderr and "spotify-pipeline demo" in result.stderr
    assert "Traceback" not in result.stderr


def test_bad_transform_batch_size_is_one_clear_line(tmp_path: Path) -> None:
    result = cli("transform", "--lake", str(tmp_path), env={"SPOTIFY_PIPELINE_TRANSFORM_BATCH_BYTES": "lots"})
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "Traceback" not in result.stderr
    assert "SPOTIFY_PIPELINE_TRANSFORM_BATCH_BYTES = 'lots' is not a whole number" in result.stderr


def test_bad_playlist_reference_fails_before_any_request(simulator: SimulatedSpotify, tmp_path: Path) -> None:
    result = cli("run", "--playlist", "https://example.com/x", env=sim_env(simulator, tmp_path))
    assert result.returncode == 2
    assert "not a Spotify playlist reference" in result.stderr and "Traceback" not in result.stderr
    assert simulator.stats.api_requests == 0 and not (tmp_path / "raw").exists()


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    result = cli("--debug", "query", "SELECT 1", "--lake", str(tmp_path))
    assert result.returncode != 0 and "Traceback" in result.stderr


def test_run_query_and_tables(simulator: SimulatedSpotify, tmp_path: Path) -> None:
    env = sim_env(simulator, tmp_path / "lake")
    refs = [
        f"spotify:playlist:{simulator.playlist_ids()[0]}",
        f"https://open.spotify.com/playlist/{simulator.playlist_ids()[1]}?si=x",
        *simulator.playlist_ids()[2:],
    ]
    args = [arg for ref in refs for arg in ("--playlist", ref)]
    result = cli("run", *args, env=env)
    assert result.returncode == 0, result.stderr
    assert "5 checked, 5 changed" in result.stdout and "tables:" in result.stdout

    out = cli("query", "SELECT count(*) AS n FROM playlists", "--format", "json", env=env)
    assert json.loads(out.stdout) == [{"n": 5}]
    out = cli(
        "query", "SELECT playlist_id, position FROM playlist_songs ORDER BY 1, 2 LIMIT 2", "--format", "csv", env=env
    )
    assert out.stdout.splitlines()[0] == "playlist_id,position" and len(out.stdout.splitlines()) == 3
    out = cli("query", "SELECT name FROM songs LIMIT 3", env=env)
    assert out.returncode == 0 and "(3 rows)" in out.stdout

    refused = cli("query", "DROP TABLE songs", env=env)
    assert refused.returncode == 7 and "only read queries" in refused.stderr
    refused = cli("query", "COPY songs TO 'x.csv'", env=env)
    assert refused.returncode == 7
    broken = cli("query", "SELECT nope FROM songs", env=env)
    assert broken.returncode == 7 and "SQL error" in broken.stderr and "Traceback" not in broken.stderr

    listing = cli("tables", env=env)
    assert "songs (" in listing.stdout and "playlist_songs (" in listing.stdout

    again = cli("run", *args, env=env)
    assert "5 unchanged" in again.stdout


def test_missing_playlist_gives_a_non_zero_exit_and_keeps_the_rest(simulator: SimulatedSpotify, tmp_path: Path) -> None:
    env = sim_env(simulator, tmp_path)
    result = cli("run", "--playlist", "0" * 22, "--playlist", simulator.playlist_ids()[0], env=env)
    assert result.returncode == 3
    assert "not found (404)" in result.stdout and "some playlists failed" in result.stderr
    out = cli("query", "SELECT count(*) FROM playlists", "--format", "csv", env=env)
    assert out.stdout.splitlines()[1] == "1"


def test_playlist_ids_from_environment_and_file(simulator: SimulatedSpotify, tmp_path: Path) -> None:
    env = sim_env(simulator, tmp_path / "lake")
    env["SPOTIFY_PLAYLIST_IDS"] = ",".join(simulator.playlist_ids()[:2])
    assert "2 checked" in cli("extract", env=env).stdout
    listing = tmp_path / "playlists.txt"
    listing.write_text("\n".join(simulator.playlist_ids()[2:]) + "\n")
    assert "3 checked" in cli("extract", "--playlists-file", str(listing), env=env).stdout


def test_secrets_never_appear_in_output_or_files(make_simulator: SimulatorFactory, tmp_path: Path) -> None:
    server = make_simulator(playlists=3)
    server.client_secret = SECRET
    env = sim_env(server, tmp_path / "lake")
    outputs = [
        cli("run", *[a for p in server.playlist_ids() for a in ("--playlist", p)], env=env),
        cli("--log-format", "json", "--debug", "run", "--playlist", server.playlist_ids()[0], "--full", env=env),
    ]
    bad = cli("run", "--playlist", server.playlist_ids()[0], env={**env, "SPOTIFY_CLIENT_SECRET": SECRET + "x"})
    outputs.append(bad)
    assert bad.returncode == 4
    tokens = list(server._tokens)  # every access token the simulator issued
    assert len(tokens) == 2
    needles = [SECRET, *tokens]
    for result in outputs:
        for needle in needles:
            assert needle not in result.stdout and needle not in result.stderr
    for path in (tmp_path / "lake").rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            if path.suffix == ".gz":
                import gzip

                data = gzip.decompress(data)
            for needle in needles:
                assert needle.encode() not in data, path


def test_unwritable_lake_is_a_clear_error(simulator: SimulatedSpotify, tmp_path: Path) -> None:
    if os.geteuid() == 0:
        lake = tmp_path / "file-not-folder"
        lake.write_text("x")
    else:  # pragma: no cover - CI runs as root, where permissions do not stop writes
        lake = tmp_path / "ro"
        lake.mkdir(mode=0o500)
    result = cli("run", "--playlist", simulator.playlist_ids()[0], "--lake", str(lake), env=sim_env(simulator, lake))
    assert result.returncode == 6 and "Traceback" not in result.stderr
    assert str(lake) in result.stderr


@pytest.mark.slow
def test_demo_runs_end_to_end(tmp_path: Path) -> None:
    result = cli("demo", "--lake", str(tmp_path / "lake"))
    assert result.returncode == 0, result.stderr
    assert "Top artists by playlist appearances" in result.stdout
    assert "12 checked, 12 changed" in result.stdout
    again = cli("demo", "--lake", str(tmp_path / "lake"))
    assert "12 unchanged" in again.stdout
    tables_line = next(line for line in result.stdout.splitlines() if line.startswith("tables:"))
    assert tables_line in again.stdout.splitlines(), "the same rows after an unchanged second run"


def test_json_log_lines_off_a_terminal(simulator: SimulatedSpotify, tmp_path: Path) -> None:
    result = cli(
        "--log-format",
        "json",
        "run",
        *[a for p in simulator.playlist_ids() for a in ("--playlist", p)],
        env=sim_env(simulator, tmp_path),
    )
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    done = {e["playlist_id"]: e for e in events if "playlist_id" in e}
    assert set(done) == set(simulator.playlist_ids())
    assert all(e["level"] == "info" and e["requests"] > 0 for e in done.values())
