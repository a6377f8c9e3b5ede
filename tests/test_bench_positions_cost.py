"""bench/positions_cost.py times the parse into position rows and its alternatives on one batch of a lake."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import bench_on_generated_lake


def test_positions_cost_on_a_small_lake(tmp_path: Path) -> None:
    result = bench_on_generated_lake(tmp_path, ["bench.positions_cost", "--repeat", "1"])
    assert result["items"] > 1500 and result["positions"] == result["items"]
    timed = {k: v for k, v in result.items() if isinstance(v, dict)}
    assert len(timed) == 6 and all(v["cpu_s"] >= 0 and v["wall_s"] >= 0 for v in timed.values())
