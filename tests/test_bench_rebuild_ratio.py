"""bench/rebuild_ratio.py runs on an existing lake and reports the ratio of the times it measured."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import bench_on_generated_lake


def test_rebuild_ratio_on_a_small_lake(tmp_path: Path) -> None:
    result = bench_on_generated_lake(tmp_path, ["bench.rebuild_ratio", "--repeat", "2"])
    assert result["items"] > 1500 and len(result["rebuild_s"]) == len(result["parse_floor_s"]) == 2
    # The medians of two are their means. The times are printed rounded to 10 ms, and at this size the parse
    # floor is a few tens of ms, so the ratio is checked against the range the rounding allows.
    rebuild, floor = sum(result["rebuild_s"]), sum(result["parse_floor_s"])
    lowest, highest = (rebuild - 0.01) / (floor + 0.01), (rebuild + 0.01) / max(floor - 0.01, 1e-9)
    assert lowest - 0.01 <= result["rebuild_vs_parse_floor"] <= highest + 0.01
    # Process CPU beside each wall (user + sys, every thread): on a shared machine the walls swing with the
    # load, the CPU far less. Parsing and rebuilding take CPU, and the ratio is of the CPU medians.
    assert len(result["rebuild_cpu_s"]) == len(result["parse_floor_cpu_s"]) == 2
    assert min(result["rebuild_cpu_s"]) > 0 and min(result["parse_floor_cpu_s"]) > 0
    cpu_rebuild, cpu_floor = sum(result["rebuild_cpu_s"]), sum(result["parse_floor_cpu_s"])
    lowest, highest = (cpu_rebuild - 0.01) / (cpu_floor + 0.01), (cpu_rebuild + 0.01) / max(cpu_floor - 0.01, 1e-9)
    assert lowest - 0.01 <= result["rebuild_vs_parse_floor_cpu"] <= highest + 0.01
