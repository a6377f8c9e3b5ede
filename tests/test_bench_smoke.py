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
    run = results["transform"]["20000"]
    assert run["items"] > 15_000 and run["rebuild_s"]["runs"] == 1
    assert set(run["query_latency_ms"]) >= {"top_artists", "data_health"}
    extract = results["extract"]
    assert extract["requests"] >= extract["minimum_requests"] > 0
    assert extract["unchanged_requests_per_playlist"] == 1.0
    assert "rebuild throughput" in done.stdout
