"""Finalise raw-zone runs that were killed before writing their manifest, from their checkpoints.

A killed run leaves part files (complete, atomically written) and checkpoints naming the playlists whose
pages were all on disk. Recovery writes the missing manifest with status `interrupted`, listing every part
file of the run and those complete playlists, so the transform can use them and the next extraction does
not fetch those pages again. Nothing is rewritten: only the missing manifest is added.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from .layout import ATOMIC_ENTITIES, CHECKPOINT_PREFIX, MANIFEST_PREFIX, RAW_ENTITIES, manifest_key, run_id_of
from .storage import Storage


def interrupted_runs(storage: Storage) -> dict[str, list[str]]:
    """Run id -> its part files, for runs with part files but no manifest."""
    finished = {run_id_of(k) for k in storage.list(MANIFEST_PREFIX)}
    parts: dict[str, list[str]] = {}
    for entity in (e for e in RAW_ENTITIES if e not in ATOMIC_ENTITIES):
        for key in storage.list(f"raw/{entity}/"):
            run_id = run_id_of(key)
            if run_id and run_id not in finished and key.endswith(".jsonl.gz"):
                parts.setdefault(run_id, []).append(key)
    return parts


def recover_interrupted_runs(storage: Storage) -> list[dict[str, Any]]:
    """Write a manifest for every interrupted run; returns those manifests."""
    recovered = []
    for run_id, keys in sorted(interrupted_runs(storage).items()):
        # Each checkpoint names the playlists completed since the one before (older versions wrote the
        # whole list each time: the union reads both).
        complete: dict[str, Any] = {}
        for checkpoint in sorted(storage.list(f"{CHECKPOINT_PREFIX}run_id={run_id}/")):
            complete.update(json.loads(storage.read(checkpoint)).get("complete", {}))
        extracted_date = keys[0].split("extracted_date=", 1)[1].split("/", 1)[0]
        files = [{"key": k, "entity": k.split("/")[1], "records": None, "bytes": len(storage.read(k))} for k in keys]
        manifest = {
            "run_id": run_id,
            "extracted_date": extracted_date,
            "status": "interrupted",
            "files": files,
            "playlists": {pid: {**outcome, "status": "complete"} for pid, outcome in complete.items()},
            "recovered": True,
        }
        storage.write_atomic(
            manifest_key(dt.date.fromisoformat(extracted_date), run_id),
            json.dumps(manifest, indent=2, ensure_ascii=False).encode(),
        )
        recovered.append(manifest)
    return recovered
