"""A CLI scripts can read (issue #19, point 4): --format json with numbers as numbers, one CSV/JSON dialect for
`query` and `export`, `--out -`, global options before or after the command, and the README's exit codes."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from spotify_pipeline.cli.main import hoist_global_options, main
from spotify_pipeline.simulator import SimulatedSpotify

from ..conftest import SimulatorFactory, cli, sim_env


@pytest.fixture
def env(make_simulator: SimulatorFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    for name in list(os.environ):
        if name.startswith("SPOTIFY_") and name != "SPOTIFY_PIPELINE_CONFIG_DIR":
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    server: SimulatedSpotify = make_simulator(playlists=3, items_per_playlist=15)
    values = sim_env(server, tmp_path / "lake")
    values["SPOTIFY_PLAYLIST_IDS"] = ",".join(server.playlist_ids())
    yield values


def invoke(env: dict[str, str], *args: str) -> Result:
    return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)


def numbers_are_numbers(value: Any) -> None:
    """No count hides in a string: every value under a key naming a count is an int."""
    if isinstance(value, dict):
        for key, item in value.items():
            counts = {"total", "retries", "rate_limited", "saved", "checked", "changed", "unchanged", "failed", "items"}
            if key in counts:
                assert isinstance(item, int) and not isinstance(item, bool), (key, item)
            numbers_are_numbers(item)
    elif isinstance(value, list):
        for item in value:
            numbers_are_numbers(item)


def test_every_scripted_command_prints_json(env: dict[str, str]) -> None:
    ran = invoke(env, "run", "--format", "json")
    assert ran.exit_code == 0, ran.output
    run = json.loads(ran.stdout)
    numbers_are_numbers(run)
    assert run["status"] == "succeeded" and run["extract"]["playlists"]["changed"] == 3
    assert run["extract"]["requests"]["total"] > 0 and run["transform"]["rows"]["playlists"] == 3
    dt.datetime.fromisoformat(run["started_at"])

    extracted = json.loads(invoke(env, "extract", "--format", "json").stdout)
    assert extracted["playlists"]["unchanged"] == 3 and extracted["requests"]["total"] == 3
    transformed = json.loads(invoke(env, "transform", "--format", "json").stdout)
    assert transformed["raw_runs"] == [extracted["run_id"]] and isinstance(transformed["rows"]["songs"], int)

    checked = json.loads(invoke(env, "check", "--format", "json").stdout)
    assert (
        checked["failed"] == 0 and checked["checks"] and all(isinstance(c["passed"], bool) for c in checked["checks"])
    )
    assert all(isinstance(c["failing_rows"], int) for c in checked["checks"])

    tables = {t["name"]: t for t in json.loads(invoke(env, "tables", "--format", "json").stdout)}
    assert (
        tables["playlists"]["rows"] == 3 and {"name": "playlist_id", "type": "string"} in tables["playlists"]["columns"]
    )

    runs = json.loads(invoke(env, "runs", "--format", "json").stdout)
    assert [r["status"] for r in runs] == ["succeeded"] * 3
    first = runs[-1]
    assert isinstance(first["requests"], int) and isinstance(first["seconds"], float)
    assert first["checks_failed"].endswith("/" + str(len(checked["checks"])))

    reports = json.loads(invoke(env, "report", "--list", "--format", "json").stdout)
    assert {"name", "title", "description"} == set(reports[0]) and "top_artists" in {r["name"] for r in reports}

    who = json.loads(invoke(env, "whoami", "--format", "json").stdout)
    assert who["auth"] == "client credentials" and who["mode"] == "extended" and who["user_id"] is None
    assert isinstance(who["can"], list)


def test_query_and_export_share_one_dialect(env: dict[str, str]) -> None:
    assert invoke(env, "run").exit_code == 0
    sql = "SELECT * FROM songs"
    queried = invoke(env, "query", sql, "--format", "csv").stdout
    exported = invoke(env, "export", "--table", "songs", "--format", "csv", "--out", "-")
    assert exported.exit_code == 0 and "wrote" in exported.stderr and "wrote" not in exported.stdout
    rows_q = list(csv.reader(io.StringIO(queried)))
    rows_e = list(csv.reader(io.StringIO(exported.stdout)))
    assert rows_q[0] == rows_e[0] and sorted(rows_q[1:]) == sorted(rows_e[1:])
    header = rows_q[0]
    explicit = {r[header.index("explicit")] for r in rows_q[1:]}
    assert explicit <= {"true", "false", ""} and explicit & {"true", "false"}
    first_seen = rows_q[1][header.index("first_seen_at")]
    assert dt.datetime.fromisoformat(first_seen).utcoffset() == dt.timedelta(0) and "T" in first_seen

    artists_csv = list(
        csv.DictReader(io.StringIO(invoke(env, "query", "SELECT * FROM artists", "--format", "csv").stdout))
    )
    assert all(
        json.loads(r["genres"]) is None or isinstance(json.loads(r["genres"]), list) for r in artists_csv if r["genres"]
    )

    lines = invoke(env, "export", "--table", "songs", "--format", "json", "--out", "-").stdout.splitlines()
    queried_json = json.loads(invoke(env, "query", sql, "--format", "json").stdout)
    key = "song_id"
    by_id = {r[key]: r for r in queried_json}
    for line in lines:
        record = json.loads(line)
        assert record == by_id[record[key]]
    assert len(lines) == len(queried_json)


def test_global_options_before_or_after_the_command(env: dict[str, str], tmp_path: Path) -> None:
    lake = env.pop("SPOTIFY_PIPELINE_LAKE")
    assert invoke(env, "--lake", lake, "run").exit_code == 0
    before = invoke(env, "--lake", lake, "tables", "--format", "json")
    after = invoke(env, "tables", "--format", "json", "--lake", lake, "--debug", "--log-format", "json")
    assert before.exit_code == after.exit_code == 0 and json.loads(before.stdout) == json.loads(after.stdout)
    # The process way, with the log lines checked: JSON, timestamps ISO 8601 in UTC.
    result = cli("run", "--log-format=json", "--lake", lake, env=env)
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    assert events
    for event in events:
        assert event["ts"].endswith("Z")
        assert dt.datetime.fromisoformat(event["ts"]).utcoffset() == dt.timedelta(0)


def test_hoisting_leaves_command_options_and_arguments_alone() -> None:
    commands = main.commands
    assert hoist_global_options(["query", "SELECT 1", "--debug"], commands) == ["--debug", "query", "SELECT 1"]
    assert hoist_global_options(["tables", "--lake", "x"], commands) == ["tables", "--lake", "x"]  # its own
    assert hoist_global_options(["whoami", "--lake", "x"], commands) == ["--lake", "x", "whoami"]
    assert hoist_global_options(["query", "--", "--debug"], commands) == ["query", "--", "--debug"]
    assert hoist_global_options(["query", "--format", "json", "--log-format=json"], commands) == [
        "--log-format=json",
        "query",
        "--format",
        "json",
    ]


def test_exit_codes_as_the_readme_lists(env: dict[str, str], tmp_path: Path) -> None:
    missing = tmp_path / "no-lake"
    for args in (("tables",), ("query", "SELECT 1"), ("runs",), ("check",), ("export", "--table", "songs")):
        result = invoke(env, *args, "--lake", str(missing))
        assert result.exit_code == 6, (args, result.output)
        assert "no tables in the lake" in result.stderr

    assert invoke(env, "run").exit_code == 0
    unknown_report = invoke(env, "query", "--report", "nope")
    assert unknown_report.exit_code == 2 and "no report named 'nope'" in unknown_report.stderr
    unknown_table = invoke(env, "export", "--table", "nope", "--format", "csv")
    assert unknown_table.exit_code == 2 and "no table named 'nope'" in unknown_table.stderr
    both = invoke(env, "query", "SELECT 1", "--report", "top_artists")
    assert both.exit_code == 2 and "Usage:" in both.stderr and "not both" in both.stderr
    broken = invoke(env, "query", "SELECT nope FROM songs")
    assert broken.exit_code == 7


# Every command that reads a lake, on a folder that holds none. (`run`, `extract`, `transform`, `demo` and
# `import-history` create one.)
READ_COMMANDS = (
    ("tables",),
    ("tables", "--format", "json"),
    ("query", "SELECT 1"),
    ("query", "--report", "top_artists"),
    ("runs",),
    ("runs", "--format", "json"),
    ("check",),
    ("check", "--raw"),
    ("export", "--table", "songs"),
    ("report", "--out", "r.html"),
    ("report", "--year", "2025", "--out", "y.html"),
    ("recommend", "--playlist", "37i9dQZF1DXcBWIGoYBM5M"),
    ("recommend", "--for-me"),
    ("recommend", "--evaluate"),
    ("serve", "--port", "0"),
    ("repair",),
)


@pytest.mark.parametrize("args", READ_COMMANDS, ids=" ".join)
def test_every_read_command_on_a_missing_lake_exits_6(args: tuple[str, ...], tmp_path: Path) -> None:
    missing = tmp_path / "no-lake"
    result = CliRunner().invoke(main, [*args, "--lake", str(missing)], catch_exceptions=False)
    assert result.exit_code == 6, (args, result.output)
    assert result.stderr.startswith("Error: ") and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "Traceback" not in result.output and not (tmp_path / "r.html").exists()


def test_report_to_stdout(env: dict[str, str]) -> None:
    assert invoke(env, "run").exit_code == 0
    result = invoke(env, "report", "--out", "-")
    assert result.exit_code == 0 and result.stdout.lstrip().lower().startswith("<!doctype html")
    assert not Path("-").exists() and not Path("report.html").exists()
