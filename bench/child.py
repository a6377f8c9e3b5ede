"""Phases run in a child process so their peak RSS can be measured alone (ru_maxrss of the child)."""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main() -> None:
    phase, lake = sys.argv[1], Path(sys.argv[2])
    if phase == "transform":
        from spotify_pipeline.lake import LocalStorage
        from spotify_pipeline.tables.catalog import Catalog
        from spotify_pipeline.transform import transform

        transform(LocalStorage(lake), Catalog(lake), rebuild=True)
    elif phase == "extract":
        from spotify_pipeline import pipeline
        from spotify_pipeline.config import load_settings

        args = json.loads(sys.argv[3])
        settings = load_settings({"lake": str(lake), **args["settings"]}, env={})
        summary = pipeline.extract(settings, args["playlists"])
        if summary.status != "succeeded":
            raise SystemExit(f"extraction {summary.status}: {summary.stop_reason or summary.failed}")
    else:
        raise SystemExit(f"unknown phase {phase}")
    print(json.dumps({"peak_rss_kib": peak_rss_kib()}))


def peak_rss_kib() -> int:
    """This process's own high-water mark since exec (VmHWM); rusage can include the parent's pages
    inherited at fork, which would charge the benchmark's own memory to the phase."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError("no VmHWM in /proc/self/status")


if __name__ == "__main__":
    main()
