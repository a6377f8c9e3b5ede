"""The benchmark harness runs end to end in quick mode (no timing is asserted: benchmarks are not tests)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_quick_benchmark_runs(tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.run",
            "--quick",
            *("--sizes", "5000"),  # every scenario, on a quarter of --quick's 20k items: the harness is tested
            "--no-baselines",
            "--repeat",
            "1",
            "--extract-items",
            "1500",
            "--out",
            str(out),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(out.read_text())
    run = results["transform"]["5000"]
    assert run["items"] > 3_000 and run["rebuild_s"]["runs"] == 1
    assert set(run["query_latency_ms"]) >= {"top_artists", "data_health"}
    extract = results["extract"]
    assert extract["requests"] >= extract["minimum_requests"] > 0
    assert extract["unchanged_requests_per_playlist"] == 1.0
    assert extract["rate_window_s"] == 30.0 and results["extract_1s_window"]["rate_window_s"] == 1.0
    assert results["extract_1s_window"]["requests"] >= extract["minimum_requests"]
    assert "per rolling 1 s window" in done.stdout
    assert results["extract_unlimited"]["requests"] >= extract["minimum_requests"]
    assert "no limit: what the harness serves" in done.stdout
    assert "rebuild throughput" in done.stdout


def test_recommend_benchmark_runs(tmp_path: Path) -> None:
    """bench/recommend.py end to end on a small lake: every measurement it prints is there."""
    args = ["--items", "3000", "--queries", "3", "--cli-queries", "1", "--lake", str(tmp_path / "lake")]
    done = subprocess.run(
        [sys.executable, "-m", "bench.recommend", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["items"] == 3000 and result["songs"] > 0 and result["neighbor_rows"] > 0
    for way in ("recommender", "one_shot", "cli"):
        assert set(result[way]) == {"p50_ms", "p95_ms"}, way


def test_refreshing_the_docs_keeps_the_hand_written_part() -> None:
    from bench.report import refresh

    page = "# Benchmarks\n\nold table\n\n## What changed since\n\nanalysis\n\n## Targets\n\nverdicts\n"
    refreshed = refresh(page, "# Benchmarks\n\nnew table\n")
    assert refreshed == "# Benchmarks\n\nnew table\n\n## What changed since\n\nanalysis\n\n## Targets\n\nverdicts\n"
    assert refresh("", "# Benchmarks\n\nnew table\n") == "# Benchmarks\n\nnew table\n"


def test_quick_steady_state_and_small_run_benchmarks_run(tmp_path: Path) -> None:
    """bench/steady_state.py (runs, maintenance, a lake without orphans), then bench/small_run.py on its lake."""
    out = tmp_path / "steady.json"
    done = subprocess.run(
        [
            *(sys.executable, "-m", "bench.steady_state", "--file-rows", "300"),  # several files a table
            # --quick's 3,000 items and kept runs, but 4 runs, not 6: still maintained twice
            *("--items", "3000", "--runs", "4", "--maintain-every", "2", "--keep-runs", "2"),
            *("--lake", str(tmp_path / "lake"), "--out", str(out)),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(out.read_text())
    assert len(result["runs"]) == 4 and len(result["maintenance"]) == 2
    assert set(result["runs"][0]) >= {"wall_s", "bytes_written", "files_written", "peak_rss_mib"}
    assert result["lake_files"] == result["referenced_files"]  # maintenance left no orphan behind
    # One changed playlist rewrites the file(s) of playlist_songs holding it, not the table (the tables whose
    # keys it touches at random, songs and the like, are rewritten nearly whole: docs/BENCHMARKS.md).
    written = result["one_playlist_last"]["data_bytes_by_table"]["playlist_songs"]
    assert written < result["table_bytes_by_table"]["playlist_songs"] / 3

    # bench/small_run.py on that lake (it is never written: each repeat works on a copy): a one-playlist run
    # timed step by step, against `query "select 1"`. One lake for both saves CI a build.
    lake = tmp_path / "lake"
    done = subprocess.run(
        [sys.executable, "-m", "bench.small_run", "--lake", str(lake), "--items", "3000", "--repeat", "1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    run, fixed, summary = (json.loads(line) for line in done.stdout.splitlines())
    assert run["batch_rows"] > 0 and {"build_batch", "scope_playlist_songs", "checks"} <= set(run["steps_s"])
    assert fixed["fixed_costs"]["one_append_commit_s"] > 0
    wall, cli = summary["transform_wall_s"], summary["cli_open_s"]
    assert cli > 0 and abs(summary["ratio"] - wall / cli) < 0.02


def test_devmode_requests_benchmark_runs() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench.devmode_requests", "--playlists", "8", "--items", "30", "--listened", "6"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout)
    before, after = result["before"], result["after"]
    assert after["enrichment_skipped"]["tracks_in_items"] == 3
    assert result["saved"] == before["requests"] - after["requests"] >= 1 + 3  # >= 1 refused probe, 3 tracks
    assert result["added_fields"]["track"]["kept"] == [] and "external_ids" in result["added_fields"]["album"]["kept"]
