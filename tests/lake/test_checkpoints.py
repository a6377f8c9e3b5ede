"""Checkpoints of a raw-zone run, and recovery of a run killed before its manifest (real files on disk)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from spotify_pipeline.lake import LocalStorage, RawZoneWriter
from spotify_pipeline.lake.layout import CHECKPOINT_PREFIX
from spotify_pipeline.lake.raw import RawZoneReader
from spotify_pipeline.lake.recovery import recover_interrupted_runs

RUN = "20261101T120000Z-000001"


def write_playlists(writer: RawZoneWriter, first: int, count: int) -> None:
    for n in range(first, first + count):
        pid = f"playlist{n:04d}"
        writer.write(
            "playlists", {"run_id": RUN, "playlist_id": pid}, json.dumps({"id": pid, "pad": "x" * 500}).encode()
        )
        writer.mark_complete(pid, {"snapshot_id": f"s{n}", "items": 0})


def test_checkpoints_stay_small_and_recovery_finds_every_completed_playlist(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    writer = RawZoneWriter(storage, RUN, dt.date(2026, 11, 1), part_target_bytes=2048)
    write_playlists(writer, 0, 60)
    writer.flush()
    writer.part_target_bytes = 1 << 30
    write_playlists(writer, 60, 5)  # buffered, never flushed nor checkpointed: the run is killed here
    checkpoints = sorted(storage.list(f"{CHECKPOINT_PREFIX}run_id={RUN}/"))
    assert len(checkpoints) > 10
    sizes = [len(storage.read(key)) for key in checkpoints]
    assert max(sizes) < 2 * sizes[0]  # each holds what is new since the one before, not everything so far
    # The process dies without close(): no manifest. Recovery writes one from the checkpoints.
    (recovered,) = recover_interrupted_runs(storage)
    assert recovered["status"] == "interrupted"
    assert sorted(recovered["playlists"]) == [f"playlist{n:04d}" for n in range(60)]
    assert RawZoneReader(storage).manifests()[0]["run_id"] == RUN


def test_recovery_reads_checkpoints_written_by_older_versions(tmp_path: Path) -> None:
    # Older versions wrote the whole list of completed playlists into every checkpoint.
    storage = LocalStorage(tmp_path)
    writer = RawZoneWriter(storage, RUN, dt.date(2026, 11, 1), part_target_bytes=1 << 30)
    write_playlists(writer, 0, 3)
    writer.flush()
    key = f"{CHECKPOINT_PREFIX}run_id={RUN}/checkpoint-00002.json"
    cumulative = {f"playlist{n:04d}": {"snapshot_id": f"s{n}", "items": 0} for n in range(3)}
    storage.write_atomic(key, json.dumps({"run_id": RUN, "files": [], "complete": cumulative}).encode())
    (recovered,) = recover_interrupted_runs(storage)
    assert sorted(recovered["playlists"]) == sorted(cumulative)
