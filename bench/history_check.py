"""The CPU seconds of the history check's worker job alone: `check_and_write` (read, sha256, strict decode,
Arrow part) of every file of a download, in sequence, in this one process. Steadier than the whole import on
a shared machine, and what the worker processes spend between them (history/workers.py).

    python -m bench.history_check DIR        # DIR: extended-history files, e.g. `bench.history --export DIR`
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("export", type=Path)
    args = parser.parse_args()
    from spotify_pipeline.history import workers

    files = sorted(args.export.glob("*.json"))
    meta = {"run_id": "r", "fetched_at": "2024-01-01T00:00:00+00:00", "user_id": "u", "file": "f"}
    plays = 0
    with tempfile.TemporaryDirectory(prefix="bench-history-check-") as tmp:
        began = time.process_time()
        for number, path in enumerate(files):
            job = workers.Job(path, "extended", meta | {"format": "extended"}, Path(tmp) / f"{number}.parquet", True)
            checked = workers.check_and_write(job)
            if not checked.part_written or checked.plays is None:
                raise SystemExit(f"{path.name}: not checked by the fast path")
            plays += checked.plays
        cpu_s = time.process_time() - began
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"files": len(files), "plays": plays, "cpu_s": round(cpu_s, 2), "peak_rss_mib": round(peak)}))


if __name__ == "__main__":
    main()
