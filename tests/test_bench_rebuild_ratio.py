"""bench/rebuild_ratio.py runs on an existing lake and reports the ratio of the times it measured."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_rebuild_ratio_on_a_small_lake(tmp_path: Path) -> None:
    lake = str(tmp_path / "lake")
    for command in (["bench.generate", "--items", "2000"], ["bench.rebuild_ratio", "--repeat", "2"]):
        done = subprocess.run(
            [sys.executable, "-m", *command, "--lake", lake], cwd=ROOT, capture_output=True, text=True, timeout=600
        )
        assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["items"] > 1500 and len(result["rebuild_s"]) == len(result["parse_floor_s"]) == 2
    ratio = sum(result["rebuild_s"]) / sum(result["parse_floor_s"])  # the medians of two are their means
    assert abs(result["rebuild_vs_parse_floor"] - ratio) < 0.02 * ratio + 0.01
