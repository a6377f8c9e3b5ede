"""Honest progress (issue #19, point 5): the count advances as playlists finish, with pages, an ETA and the
phase; off a terminal, a plain (or JSON) progress line every few seconds on stderr. Real runs against a
simulator slowed with its latency option, so a run lasts long enough for lines to appear."""

from __future__ import annotations

import json
import re
from pathlib import Path

from spotify_pipeline import Lake
from spotify_pipeline.extract.extractor import Progress
from spotify_pipeline.simulator import FaultPlan

from ..conftest import SimulatorFactory, cli, sim_env

LINE = re.compile(
    r"progress (?P<phase>\w+): (?P<done>\d+)/(?P<total>\d+) playlists, (?P<pages>\d+) pages, \d+ items, "
    r"\d+ requests(?:, ETA (?:\d+s|\?))?"
)


def slow_env(make_simulator: SimulatorFactory, lake: Path) -> tuple[dict[str, str], list[str]]:
    # 6 playlists of ~150 items (2 item pages each) at 120 ms a request, one at a time: a few seconds.
    server = make_simulator(faults=FaultPlan(latency_ms=120), playlists=6, items_per_playlist=150)
    env = {**sim_env(server, lake), "SPOTIFY_PIPELINE_PROGRESS_SECONDS": "0.3", "SPOTIFY_PIPELINE_CONCURRENCY": "1"}
    return env, [a for p in server.playlist_ids() for a in ("--playlist", p)]


def test_progress_lines_off_a_terminal_advance_as_playlists_finish(
    make_simulator: SimulatorFactory, tmp_path: Path
) -> None:
    env, playlists = slow_env(make_simulator, tmp_path / "lake")
    result = cli("run", *playlists, env=env)
    assert result.returncode == 0, result.stderr
    lines = [m for m in (LINE.search(line) for line in result.stderr.splitlines()) if m]
    extract = [(int(m["done"]), int(m["total"])) for m in lines if m["phase"] == "extract"]
    assert extract and all(total == 6 for _, total in extract), result.stderr
    done = [d for d, _ in extract]
    assert done == sorted(done), "the count never goes back"
    assert any(0 < d < 6 for d in done), f"the count advanced before every playlist was done: {result.stderr}"
    assert any(int(m["pages"]) > 0 for m in lines) and any("ETA" in m[0] for m in lines)
    assert "Traceback" not in result.stderr


def test_progress_lines_are_json_with_log_format_json(make_simulator: SimulatorFactory, tmp_path: Path) -> None:
    env, playlists = slow_env(make_simulator, tmp_path / "lake")
    result = cli("--log-format", "json", "run", *playlists, env=env)
    assert result.returncode == 0, result.stderr
    assert all(line.startswith("{") for line in result.stderr.splitlines() if line.strip()), result.stderr
    events = [json.loads(line) for line in result.stderr.splitlines() if line.strip()]
    progress = [e for e in events if e["msg"].startswith("progress ")]
    assert progress, result.stderr
    for event in progress:
        assert event["phase"] in ("extract", "enrich", "transform", "publish")
        assert isinstance(event["playlists_done"], int) and isinstance(event["pages"], int)
    extract = [e["playlists_done"] for e in progress if e["phase"] == "extract"]
    assert extract == sorted(extract) and any(0 < d < 6 for d in extract), result.stderr


class Recorder(Progress):
    """What a progress sink is told, in order."""

    def __init__(self) -> None:
        self.events: list[tuple[str, ...]] = []

    def phase(self, name: str, total: int | None = None) -> None:
        self.events.append(("phase", name))

    def update(self, **counters: int) -> None:
        self.events.extend(("playlist",) for _ in range(counters.get("playlists", 0)))


def test_a_run_names_its_phases_in_order_and_counts_every_playlist(
    make_simulator: SimulatorFactory, tmp_path: Path
) -> None:
    server = make_simulator(playlists=4, items_per_playlist=30)
    lake = Lake.open(
        tmp_path / "lake",
        api_url=server.api_url,
        accounts_url=server.accounts_url,
        client_id=server.client_id,
        client_secret=server.client_secret,
    )
    recorder = Recorder()
    result = lake.run([*server.playlist_ids(), "0000000000000000000000"], progress=recorder)
    assert result.playlists.failed == 1  # a missing playlist is finished too: the count reaches the total
    phases = [e[1] for e in recorder.events if e[0] == "phase"]
    assert phases == ["extract", "enrich", "transform", "publish"]
    first_enrich = recorder.events.index(("phase", "enrich"))
    assert recorder.events[:first_enrich].count(("playlist",)) == 5


def test_a_bad_progress_interval_is_one_clear_line(make_simulator: SimulatorFactory, tmp_path: Path) -> None:
    server = make_simulator(playlists=1, items_per_playlist=5)
    env = {**sim_env(server, tmp_path / "lake"), "SPOTIFY_PIPELINE_PROGRESS_SECONDS": "soon"}
    result = cli("run", "--playlist", server.playlist_ids()[0], env=env)
    assert result.returncode == 2 and "SPOTIFY_PIPELINE_PROGRESS_SECONDS" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and server.stats.api_requests == 0
