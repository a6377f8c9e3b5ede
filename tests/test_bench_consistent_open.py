"""bench/consistent_open.py times what a reader pays to never see half a publish, on a small lake."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import bench_on_generated_lake


def test_consistent_open_on_a_small_lake(tmp_path: Path) -> None:
    result = bench_on_generated_lake(tmp_path, ["bench.consistent_open", "--repeat", "1"])
    assert result["tables"] >= 10 and result["repeat"] == 1
    timed = ("stamp_ms", "snapshots_ms", "snapshots_journal_ms", "snapshots_journal_runs_ms", "open_consistent_s")
    assert all(result[k] > 0 for k in timed)
    assert not (tmp_path / "lake" / "_state" / "publish.json").exists()  # the bench's journal is gone again
