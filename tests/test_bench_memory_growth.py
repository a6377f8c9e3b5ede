"""bench/memory_growth.py end to end on a small lake, in both modes (no memory is asserted: benchmarks are not
tests); what it reports is there, and in child mode no DuckDB connection is left in the measuring process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_memory_growth_benchmark_runs_in_process_and_in_children(tmp_path: Path) -> None:
    for mode in ("process", "child"):
        out = tmp_path / f"{mode}.json"
        args = ["--items", "2000", "--runs", "2", "--mode", mode, "--lake", str(tmp_path / mode), "--out", str(out)]
        if mode == "child":  # and the dashboard beside it, its engine worker replaced at every reopen
            args += ["--serve", "--recycle-after", "1"]
        done = subprocess.run(
            [sys.executable, "-m", "bench.memory_growth", *args], cwd=ROOT, capture_output=True, text=True, timeout=600
        )
        assert done.returncode == 0, done.stderr[-3000:]
        result = json.loads(out.read_text())
        assert result["mode"] == mode and len(result["runs_detail"]) == 2
        assert {"rss_mib", "peak_mib", "python_objects", "duckdb_connections"} <= set(result["runs_detail"][0])
        assert result["duckdb_connections_last"] == 0
    assert result["engine_workers"] == 2 and result["engine_rss_max_mib"] > 0
