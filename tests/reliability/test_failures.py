"""Failures say what happened: a stopped, failed or misconfigured run ends recorded, in one line, with its reason.

Real processes, real signals, real HTTP: a run interrupted with Ctrl-C (SIGINT) or stopped by a scheduler
(SIGTERM) exits promptly and is recorded `interrupted`; a run in which every playlist fails is `failed` and
publishes nothing; a bad setting is refused before any request; an unexpected error is recorded too.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from spotify_pipeline import pipeline
from spotify_pipeline.simulator import Fault, SimulatedSpotify
from spotify_pipeline.tables.catalog import Catalog

from ..conftest import SimulatorFactory, cli, comparable_tables, settings_for, sim_env

CATALOG = {"playlists": 6, "items_per_playlist": 120, "large_playlist_items": 700, "quirk_rate": 0.0}


def run_args(server: SimulatedSpotify) -> list[str]:
    return ["run", *[a for pid in server.playlist_ids() for a in ("--playlist", pid)]]


def last_run(env: dict[str, str]) -> dict[str, Any]:
    result = cli("runs", "--format", "json", "--limit", "1", env=env)
    assert result.returncode == 0, result.stderr
    (row,) = json.loads(result.stdout)
    return dict(row)


def requests_seen(server: SimulatedSpotify) -> int:
    """Every request the simulator answered, token requests included, read from its admin endpoint."""
    stats = httpx.get(f"{server.base_url}/_admin/stats", timeout=10).json()
    return sum(stats["by_route"].values())


@pytest.mark.parametrize(
    ("sig", "code", "reason"),
    [
        (signal.SIGINT, 130, "interrupted by the user (Ctrl-C)"),
        (signal.SIGTERM, 143, "terminated (SIGTERM)"),
    ],
)
def test_a_stopped_run_exits_promptly_is_recorded_interrupted_and_the_next_run_completes(
    make_simulator: SimulatorFactory, tmp_path: Path, sig: int, code: int, reason: str
) -> None:
    source = make_simulator(**CATALOG)
    reference_lake = tmp_path / "reference"
    clean = cli(*run_args(source), env=sim_env(source, reference_lake))
    assert clean.returncode == 0, clean.stderr
    lake = tmp_path / "lake"
    env = {**sim_env(source, lake), "SPOTIFY_PIPELINE_RAW_PART_BYTES": "16384", "SPOTIFY_PIPELINE_CONCURRENCY": "2"}
    source.faults.latency_ms = 400  # slow enough that the run is mid-way when the signal arrives
    source.stats.reset()
    proc = subprocess.Popen(
        [sys.executable, "-m", "spotify_pipeline", *run_args(source)],
        env={**{k: v for k, v in os.environ.items() if not k.startswith("SPOTIFY_")}, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while source.stats.api_requests < 6 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before it could be interrupted"
    asked_before = source.stats.api_requests
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    # Promptly, counted in requests, not seconds (a loaded machine stretches seconds): the requests in flight
    # (at most the concurrency of 2, 0.4 s each here; the server counts one when it answers) finish, and no
    # new one is sent; the rest of the run (dozens of requests) is not waited for.
    asked_after = source.stats.api_requests - asked_before
    assert asked_after <= 2, f"{asked_after} requests answered after the signal"
    assert proc.returncode == code, (proc.returncode, err)
    assert "interrupted: stopping" in err and "Traceback" not in err
    run = last_run(env)
    assert run["status"] == "interrupted" and run["error"] == reason

    source.faults.latency_ms = 0
    rerun = cli(*run_args(source), env=env)
    assert rerun.returncode == 0, rerun.stderr
    assert comparable_tables(lake) == comparable_tables(reference_lake)
    assert cli("check", "--raw", env=env).returncode == 0


@pytest.mark.parametrize("outage", ["accounts-503", "accounts-unreachable", "every-playlist-404"])
def test_when_every_playlist_fails_the_run_fails_in_one_line_and_publishes_nothing(
    make_simulator: SimulatorFactory, tmp_path: Path, outage: str
) -> None:
    server = make_simulator(playlists=3, items_per_playlist=20)
    env = sim_env(server, tmp_path)
    pending = cli("extract", "--playlist", server.playlist_ids()[0], env=env)  # a raw run not yet published
    assert pending.returncode == 0, pending.stderr
    ids = server.playlist_ids()
    if outage == "accounts-503":
        server.faults.add(Fault("503", count=10_000, path_prefix="/api/token"))
    elif outage == "accounts-unreachable":
        with socketless_port() as port:
            env["SPOTIFY_ACCOUNTS_URL"] = f"http://127.0.0.1:{port}"
    else:
        ids = ["0" * 22, "1" * 22, "2" * 22]
    result = cli("run", *[a for pid in ids for a in ("--playlist", pid)], env=env)
    assert result.returncode == 3, (result.returncode, result.stderr)
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, result.stderr
    assert "the others" not in result.stdout + result.stderr and "Traceback" not in result.stderr
    if outage.startswith("accounts"):
        assert result.stderr.strip().count("\n") == 0, result.stderr  # one line, not one per playlist
        assert "accounts service" in errors[0]
    else:
        assert "every playlist failed (3 of 3)" in errors[0] and "not found (404)" in errors[0]
        assert "nothing was published" in errors[0]
    run = last_run(env)
    assert run["status"] == "failed" and run["error"] and run["error"] in errors[0]
    assert "songs" not in Catalog(tmp_path).table_names()  # the pending raw run was not published either


class socketless_port:
    """A loopback port with nothing listening on it (bound, then closed)."""

    def __enter__(self) -> int:
        import socket

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            return int(sock.getsockname()[1])

    def __exit__(self, *exc: object) -> None:
        return None


BAD_ENV = [
    ("SPOTIFY_PIPELINE_RATE_LIMIT", "-1"),
    ("SPOTIFY_PIPELINE_RATE_LIMIT", "nan"),
    ("SPOTIFY_PIPELINE_MAX_RETRY_WAIT", "inf"),
    ("SPOTIFY_PIPELINE_MAX_RETRY_WAIT", "-5"),
    ("SPOTIFY_PIPELINE_RAW_PART_BYTES", "0"),
    ("SPOTIFY_PIPELINE_RAW_PART_BYTES", "8.5"),
    ("SPOTIFY_PIPELINE_CONCURRENCY", "2.5"),
    ("SPOTIFY_PIPELINE_CONCURRENCY", "0"),
    ("SPOTIFY_PIPELINE_ENRICH_TTL_DAYS", "-1"),
    ("SPOTIFY_PIPELINE_TABLE_HISTORY_DAYS", "nan"),
    ("SPOTIFY_PIPELINE_TRANSFORM_BATCH_BYTES", "lots"),
    ("SPOTIFY_PIPELINE_TRANSFORM_BATCH_BYTES", "0"),
    ("SPOTIFY_PIPELINE_MEMORY_LIMIT", "lots"),
    ("SPOTIFY_PIPELINE_MEMORY_LIMIT", "1GB'; SELECT 1; --"),
]


@pytest.mark.parametrize(("var", "value"), BAD_ENV)
def test_a_bad_setting_in_the_environment_is_refused_before_any_request(
    simulator: SimulatedSpotify, tmp_path: Path, var: str, value: str
) -> None:
    result = cli(*run_args(simulator), env={**sim_env(simulator, tmp_path), var: value})
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert result.stderr.strip().count("\n") == 0 and "Traceback" not in result.stderr
    assert var in result.stderr and repr(value) in result.stderr and "(use " in result.stderr
    assert requests_seen(simulator) == 0
    assert not (tmp_path / "raw").exists()


BAD_TOML = [
    ("concurrency", "2.5"),
    ("concurrency", "true"),
    ("rate_limit", "-1.0"),
    ("rate_limit", "nan"),
    ("max_retry_wait", "inf"),
    ("raw_part_bytes", "0"),
    ("enrich_ttl_days", "-inf"),
    ("timeout", "0"),
    ("page_size", "500"),
]


@pytest.mark.parametrize(("key", "value"), BAD_TOML)
def test_a_bad_setting_in_the_config_file_is_refused_before_any_request(
    simulator: SimulatedSpotify, tmp_path: Path, key: str, value: str
) -> None:
    config = tmp_path / "settings.toml"
    config.write_text(f"{key} = {value}\n", encoding="utf-8")
    result = cli(*run_args(simulator), "--config", str(config), env=sim_env(simulator, tmp_path / "lake"))
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert result.stderr.strip().count("\n") == 0 and "Traceback" not in result.stderr
    assert f"{key} in {config}" in result.stderr and "(use " in result.stderr
    assert requests_seen(simulator) == 0


def test_a_bad_flag_is_refused_before_any_request(simulator: SimulatedSpotify, tmp_path: Path) -> None:
    result = cli(*run_args(simulator), "--rate-limit", "-1", env=sim_env(simulator, tmp_path))
    assert result.returncode == 2 and "--rate-limit = -1.0" in result.stderr
    result = cli(*run_args(simulator), "--max-retry-wait", "inf", env=sim_env(simulator, tmp_path))
    assert result.returncode == 2 and "--max-retry-wait" in result.stderr
    assert requests_seen(simulator) == 0


def test_good_settings_from_the_config_file_are_accepted(simulator: SimulatedSpotify, tmp_path: Path) -> None:
    config = tmp_path / "settings.toml"
    config.write_text("concurrency = 2\nrate_limit = 50\nmax_retry_wait = 30\n", encoding="utf-8")
    env = {**sim_env(simulator, tmp_path / "lake"), "SPOTIFY_PIPELINE_MEMORY_LIMIT": "1.5GiB"}
    result = cli(*run_args(simulator), "--config", str(config), env=env)
    assert result.returncode == 0, result.stderr


def test_an_unexpected_error_is_recorded_failed_with_its_type(simulator: SimulatedSpotify, tmp_path: Path) -> None:
    def explode(con: Any) -> None:
        raise RuntimeError("boom in the transform")

    settings = settings_for(simulator, tmp_path)
    with pytest.raises(RuntimeError):
        pipeline.run(settings, simulator.playlist_ids()[:1], stage_hook=explode)
    result = cli("runs", "--format", "json", "--lake", str(tmp_path))
    (row,) = json.loads(result.stdout)
    assert row["status"] == "failed" and row["error"] == "RuntimeError: boom in the transform"


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A folder another user can enter (pytest's own tmp folders are private to root)."""
    folder = Path(tempfile.mkdtemp(prefix="spotify-pipeline-ro-"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.parametrize("what", ["whole lake", "catalog only"])
def test_check_on_a_read_only_lake_is_one_line(simulator: SimulatedSpotify, shared_dir: Path, what: str) -> None:
    """Tests run as root, and root writes through any file mode; so the check runs as `nobody` (setpriv),
    for whom the lake is genuinely read-only: the whole lake (`chmod -R a-w`), or only the table catalog
    (the table data folder still writable, so the write fails at the catalog commit)."""
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv to run the check as another user")
    lake = shared_dir / "lake"
    env = sim_env(simulator, lake)
    assert cli(*run_args(simulator), env=env).returncode == 0
    subprocess.run(["chown", "-R", "nobody", str(lake)], check=True)
    if what == "whole lake":
        subprocess.run(["chmod", "-R", "a-w", str(lake)], check=True)
    else:
        (lake / "catalog.db").chmod(0o444)
    home = shared_dir / "home"
    home.mkdir(mode=0o777)
    base = {k: v for k, v in os.environ.items() if not k.startswith("SPOTIFY_")}
    as_nobody = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]
    result = subprocess.run(
        [*as_nobody, sys.executable, "-m", "spotify_pipeline", "check", "--lake", str(lake)],
        env={**base, "HOME": str(home), "SPOTIFY_PIPELINE_CONFIG_DIR": str(home)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 6, (result.returncode, result.stderr[-3000:])
    assert result.stderr.strip().count("\n") == 0 and "Traceback" not in result.stderr, result.stderr[-3000:]
    assert "not recorded" in result.stderr and "quality_results" in result.stderr
    assert "checks, 0 failed" in result.stdout  # the checks still ran and were shown
