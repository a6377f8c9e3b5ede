"""`spotify-pipeline runs` is a thin layer over `Lake.runs()`: every format shows the library's rows."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from spotify_pipeline import pipeline
from spotify_pipeline.cli.main import main
from spotify_pipeline.lake_api import Lake
from spotify_pipeline.results import RunInfo

from ..conftest import SimulatorFactory, settings_for


@pytest.fixture
def lake(make_simulator: SimulatorFactory, tmp_path: Path) -> Path:
    """A lake with two runs, the second one after a playlist changed."""
    server = make_simulator(playlists=2, items_per_playlist=10)
    settings = settings_for(server, tmp_path)
    pipeline.run(settings, server.playlist_ids())
    server.mutate([0])
    pipeline.run(settings, server.playlist_ids())
    return tmp_path


def runs_output(lake: Path, *args: str) -> str:
    out = CliRunner().invoke(main, ["runs", "--lake", str(lake), *args], catch_exceptions=False)
    assert out.exit_code == 0, out.output
    return out.output


def test_runs_in_every_format_shows_what_lake_runs_returns(lake: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    real = Lake.runs

    def recorded(self: Lake, limit: int = 20) -> list[RunInfo]:
        calls.append(limit)
        return real(self, limit)

    monkeypatch.setattr(Lake, "runs", recorded)
    runs = Lake.open(str(lake)).runs()
    assert len(runs) == 2 and runs[0].started_at > runs[1].started_at
    calls.clear()

    text = runs_output(lake).splitlines()
    assert text[0].split() == ["run_id", "status", "started_at", "seconds", "requests", "items", "changed", "failed",
                               "checks_failed", "error"]  # fmt: skip
    assert [line.split()[:2] for line in text[2:4]] == [[r.run_id, r.status] for r in runs]
    assert text[-1] == "(2 rows)"
    rows = list(csv.DictReader(io.StringIO(runs_output(lake, "--format", "csv"))))
    assert [(r["run_id"], r["requests"], r["checks_failed"]) for r in rows] == [
        (r.run_id, str(r.requests), r.checks_failed) for r in runs
    ]
    assert json.loads(runs_output(lake, "--format", "json", "--limit", "1")) == [runs[0].as_dict()]
    assert calls == [20, 20, 1], "every format goes through Lake.runs()"
