"""bench/positions_cost.py times the parse into position rows and its alternatives on one batch of a lake."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_positions_cost_on_a_small_lake(tmp_path: Path) -> None:
    lake = str(tmp_path / "lake")
    for command in (["bench.generate", "--items", "2000"], ["bench.positions_cost", "--repeat", "1"]):
        done = subprocess.run(
            [sys.executable, "-m", *command, "--lake", lake], cwd=ROOT, capture_output=True, text=True, timeout=600
        )
        assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["items"] > 1500 and result["positions"] == result["items"]
    timed = {k: v for k, v in result.items() if isinstance(v, dict)}
    assert len(timed) == 6 and all(v["cpu_s"] >= 0 and v["wall_s"] >= 0 for v in timed.values())
