"""Steady state (issue #20): a lake of N playlist items, then hourly runs in which ~1% of playlists change,
with `maintain` once a simulated day. Reports per run: wall time, bytes and files written, peak RSS; at the
end the lake's bytes and files against its tables' (current snapshots) bytes; and a run with one changed
playlist, against the time to start the CLI and open the lake (`query "select 1"`).

    python -m bench.steady_state --items 100000 --runs 168 --out steady.json
    python -m bench.steady_state --quick            # a few runs on a small lake (the smoke test)
    python -m bench.steady_state --no-layout ...    # every changed table overwritten whole, unsorted (before #20)
    python -m bench.steady_state --max-replaced-keys 800 [--keys-cap-only] ...  # the 1M tail, scaled to 100k
    python -m bench.steady_state --enrich-ttl-hours 168 ...  # enrich as the extractor does (7-day TTL)
    python -m bench.steady_state --fold-every-delete ...  # every pass folds every delete (what views want)
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import multiprocessing
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from bench.generate import RenderCache, catalog_for, remember_parts, write_run
from spotify_pipeline.lake import LocalStorage
from spotify_pipeline.lake.raw import RawZoneReader
from spotify_pipeline.simulator import Catalog as SimulatedCatalog
from spotify_pipeline.tables import maintenance as maintenance_rules
from spotify_pipeline.tables.catalog import Catalog
from spotify_pipeline.tables.maintenance import maintain, referenced_files
from spotify_pipeline.tables.retention import expire_history
from spotify_pipeline.transform import publish, scope, transform


class PeakRss:
    """Peak resident memory of this process while in the block (sampled every 20 ms), in MiB."""

    def __enter__(self) -> PeakRss:
        self.peak = self._rss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, self._rss())

    @staticmethod
    def _rss() -> float:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * 4096 / 2**20


def files(lake: Path) -> dict[str, int]:
    return {str(p): p.stat().st_size for p in (lake / "warehouse").rglob("*") if p.is_file()}


def table_bytes(lake: Path) -> int:
    """Bytes of the data and delete files the tables' current snapshots read."""
    return sum(table_bytes_by_table(lake).values())


def table_bytes_by_table(lake: Path) -> dict[str, int]:
    catalog = Catalog(lake)
    sizes: dict[str, int] = {}
    for name in catalog.table_names():
        files: dict[str, int] = {}
        for task in catalog.table(name).scan().plan_files():
            for f in (task.file, *task.delete_files):
                files[f.file_path] = f.file_size_in_bytes
        sizes[name] = sum(files.values())
    return sizes


def lake_breakdown(lake: Path) -> dict[str, int]:
    """The warehouse's bytes by what they are: the data and delete files the current snapshots read, older
    data and delete files (read only by kept snapshots), current and earlier metadata.json files,
    manifests, manifest lists."""
    catalog = Catalog(lake)
    current: set[str] = set()
    metadata: set[str] = set()
    for name in catalog.table_names():
        table = catalog.table(name)
        metadata.add(table.metadata_location.removeprefix("file://"))
        for task in table.scan().plan_files():
            current.update(f.file_path.removeprefix("file://") for f in (task.file, *task.delete_files))
    kinds = dict.fromkeys(
        ("current_data", "older_data", "current_metadata_json", "earlier_metadata_json", "manifests", "manifest_lists"),
        0,
    )
    for path, size in files(lake).items():
        if path.endswith(".metadata.json"):
            kind = "current_metadata_json" if path in metadata else "earlier_metadata_json"
        elif "/metadata/snap-" in path:
            kind = "manifest_lists"
        elif "/metadata/" in path:
            kind = "manifests"
        else:
            kind = "current_data" if path in current else "older_data"
        kinds[kind] += size
    return kinds


def live_bytes(lake: Path) -> int:
    """The table bytes less the share of each data file's rows marked deleted (and the delete files): about
    what the same rows take in files without deletes, so a lake that keeps deleted rows is not flattered."""
    from spotify_pipeline.tables.deletes import deleted_positions
    from spotify_pipeline.tables.maintenance import _delete_files

    catalog = Catalog(lake)
    total = 0.0
    for name in catalog.table_names():
        table = catalog.table(name)
        if table.current_snapshot() is None:
            continue
        deleted = deleted_positions(table.io, [d.file_path for d in _delete_files(table)])
        for task in table.scan().plan_files():
            share = deleted.get(task.file.file_path, 0) / max(1, task.file.record_count)
            total += task.file.file_size_in_bytes * (1 - share)
    return int(total)


def measured_run(lake: Path) -> dict[str, Any]:
    before = files(lake)
    started = time.perf_counter()
    with PeakRss() as rss:
        result = transform(LocalStorage(lake), Catalog(lake))
    wall = time.perf_counter() - started
    after = files(lake)
    new = {p: s for p, s in after.items() if before.get(p) != s}
    data = [p for p in new if "/data/" in p]
    by_table: dict[str, int] = {}
    for p in data:
        table = p.split("/warehouse/", 1)[1].split("/")[1]
        by_table[table] = by_table.get(table, 0) + new[p]
    return {
        "wall_s": round(wall, 3),
        "bytes_written": sum(new.values()),
        "data_bytes_written": sum(new[p] for p in data),
        "metadata_bytes_written": sum(s for p, s in new.items() if "/metadata/" in p),
        "delete_files_written": sum("-deletes.parquet" in p for p in data),
        "files_written": len(new),
        "data_files_written": len(data),
        "peak_rss_mib": round(rss.peak, 1),
        "batch_rows": result.batch_rows.get("playlist_songs", 0),
        "data_bytes_by_table": dict(sorted(by_table.items(), key=lambda kv: -kv[1])),
    }


def restore(catalog: SimulatedCatalog, lake: Path) -> tuple[dt.datetime, int]:
    """Bring a fresh catalog to where the lake's runs left it, so checks report the snapshots the lake holds:
    each playlist at the version whose snapshot its latest observation (full fetch or check) saw, popularity
    moved on once per run with checks. Returns the latest run's time and sequence number: new runs must come
    after them, as the pipeline takes a playlist's latest observation by time."""
    latest_snapshot: dict[str, str] = {}
    fetches: dict[str, int] = {}
    runs_with_checks = 0
    latest, seq = dt.datetime.min.replace(tzinfo=dt.UTC), 0
    for manifest in RawZoneReader(LocalStorage(lake)).manifests():  # oldest first
        stamp, number = str(manifest["run_id"]).split("-")
        latest = max(latest, dt.datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.UTC))
        seq = max(seq, int(number))
        outcomes = manifest.get("playlists") or {}
        runs_with_checks += any(o.get("status") == "unchanged" for o in outcomes.values())
        for pid, outcome in outcomes.items():
            latest_snapshot[pid] = outcome["snapshot_id"]
            fetches[pid] = fetches.get(pid, 0) + (outcome.get("status") == "complete")
    for index in range(catalog.config.playlists):
        pid = catalog.id_of("playlist", index)
        for _ in range(fetches.get(pid, 0)):  # at most one version per full fetch
            if pid not in latest_snapshot or catalog.snapshot_id(index) == latest_snapshot[pid]:
                break
            catalog.mutate([index])
        if pid in latest_snapshot and catalog.snapshot_id(index) != latest_snapshot[pid]:
            raise SystemExit(f"playlist {pid} in {lake} is not from a catalog of this --items; give the build's")
    catalog._popularity_epoch = runs_with_checks  # mutate moved it once per call above; once per run instead
    return latest, seq


# The raw runs are generated in a worker process of their own: its caches (RenderCache, the catalog's) stay
# out of the peak RSS measured here, which is the transform's.
_worker: dict[str, Any] = {}


def _start_worker(items: int, lake: Path, reuse: bool, enrich_ttl_hours: float = 0) -> None:
    _worker["catalog"] = remember_parts(catalog_for(items))
    _worker["cache"] = RenderCache()
    _worker["enriched"] = {}  # kind -> index -> when last enriched (only with an enrichment TTL)
    _worker["enrich_ttl"] = dt.timedelta(hours=enrich_ttl_hours)
    if reuse:
        restore(_worker["catalog"], lake)
        if enrich_ttl_hours:
            _worker["enriched"] = enriched_in(lake, _worker["catalog"])


def enriched_in(lake: Path, catalog: SimulatedCatalog) -> dict[str, dict[int, dt.datetime]]:
    """When the lake last enriched each artist and album (its tables' `enriched_at`), by catalog index: with
    `--reuse` the generator's TTL then starts where the lake's runs left it, as the extractor's would. (Started
    empty, the first runs after each start enriched every artist and album their playlists reference: at 10M,
    `artists` rewritten whole, 16 MB a run; docs/BENCHMARKS.md.)"""
    from spotify_pipeline.transform.connection import connect, register_table

    con, tables, out = connect(), Catalog(lake), {}
    for kind, key in (("artists", "artist_id"), ("albums", "album_id")):
        register_table(con, tables, kind, f"enriched_{kind}")
        found = con.execute(
            f"SELECT {key}, epoch_us(enriched_at) FROM enriched_{kind} WHERE enriched_at IS NOT NULL"
        ).fetchall()
        when = {key_id: dt.datetime.fromtimestamp(us / 1e6, dt.UTC) for key_id, us in found}
        single = kind.removesuffix("s")
        ids = ((i, catalog.id_of(single, i)) for i in range(catalog.count(single)))
        out[kind] = {i: when[key_id] for i, key_id in ids if key_id in when}
    con.close()
    return out


def _write_in_worker(
    lake: Path, run_id: str, at: dt.datetime, changed: list[int], checked: list[int] | None, mutate: bool
) -> float:
    """Write one run's raw zone (after changing `changed`, when `mutate`); returns its wall time."""
    started = time.perf_counter()
    if mutate:
        _worker["catalog"].mutate(changed)
    ttl = _worker["enrich_ttl"]
    write_run(
        lake,
        _worker["catalog"],
        run_id,
        at,
        changed,
        checked=checked,
        cache=_worker["cache"],
        enriched=_worker["enriched"] if ttl else None,
        enrich_ttl=ttl,
    )
    return round(time.perf_counter() - started, 3)


def cli_open_s(lake: Path) -> float:
    """Wall time of `spotify-pipeline query "select 1"` on the lake: starting the CLI and opening the lake."""
    times = []
    for _ in range(3):
        started = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "spotify_pipeline", "query", "select 1", "--lake", str(lake)],
            check=True,
            capture_output=True,
        )
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=168)
    parser.add_argument("--change", type=float, default=0.01, help="share of playlists changed per run")
    parser.add_argument("--maintain-every", type=int, default=24, help="runs between maintenance (0: never)")
    parser.add_argument("--keep-runs", type=int, default=24, help="snapshots of this many runs kept by maintain")
    parser.add_argument(
        "--no-run-expiry",
        action="store_true",
        help="expire snapshots only in maintain (before: `pipeline.run` expires after every run, as by default here)",
    )
    parser.add_argument("--quick", action="store_true", help="3,000 items, 6 runs, maintenance every 3")
    parser.add_argument("--no-layout", action="store_true", help="whole-table overwrites (the layout before #20)")
    parser.add_argument("--file-rows", type=int, default=0, help="rows per data file (default: PUBLISH_ROWS)")
    parser.add_argument(
        "--max-replaced-keys",
        type=int,
        default=0,
        help="the keys a run names past which a table may be merged whole (default: MAX_REPLACED_KEYS, 10,000; "
        "a 1%% run names ~800-1,100 songs at 100k, ~10,000 at 1M)",
    )
    parser.add_argument(
        "--keys-cap-only",
        action="store_true",
        help="merge a table whole whenever its keys pass the cap (the rule before `scope.WHOLE_SHARE`)",
    )
    parser.add_argument(
        "--enrich-ttl-hours",
        type=float,
        default=0,
        help="enrich an artist or album again only this long after it was enriched, as the extractor does "
        "(168: its 7-day default; 0, the default here: every run enriches every artist and album it references)",
    )
    parser.add_argument(
        "--fold-every-delete",
        action="store_true",
        help="every pass folds every delete file and merges every 2+ small files (what readers want most)",
    )
    parser.add_argument("--lake", type=Path, default=None)
    parser.add_argument("--reuse", action="store_true", help="the lake exists (built by an earlier run): no build")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    if args.quick:
        args.items, args.runs, args.maintain_every, args.keep_runs = 3000, 6, 3, 2
    if args.file_rows:
        publish.PUBLISH_ROWS = args.file_rows
    if args.max_replaced_keys:
        scope.MAX_REPLACED_KEYS = publish.MAX_REPLACED_KEYS = args.max_replaced_keys
    if args.keys_cap_only:
        scope.keyed = lambda keys, table_rows: keys <= scope.MAX_REPLACED_KEYS
    if args.no_layout:
        publish.FILTERED_PUBLISH = False
        publish.sort_order = lambda name: ""  # type: ignore[assignment]  # unsorted, as before
    if args.fold_every_delete:
        maintenance_rules.COMPACT_DELETED_SHARE, maintenance_rules.MERGE_FILES_PAST = 0.0, 1
    lake = args.lake or Path(tempfile.mkdtemp(prefix="steady-"))
    playlists = catalog_for(args.items).config.playlists
    rng = random.Random(7)
    when, seq = dt.datetime(2026, 11, 1, 0, tzinfo=dt.UTC), 1
    everything = list(range(playlists))
    started = time.perf_counter()
    spawn = multiprocessing.get_context("spawn")
    initargs = (args.items, lake, args.reuse, args.enrich_ttl_hours)
    pool = ProcessPoolExecutor(1, spawn, initializer=_start_worker, initargs=initargs)

    def generate(run_id: str, at: dt.datetime, changed: list[int], checked: list[int] | None, mutate: bool) -> float:
        return float(pool.submit(_write_in_worker, lake, run_id, at, changed, checked, mutate).result())

    if args.reuse:  # carry on after the runs already in the lake (a finished transform first, if one was cut)
        when, seq = restore(catalog_for(args.items), lake)
        rng.seed(seq)
        build = measured_run(lake)
    else:
        generate(f"{when:%Y%m%dT%H%M%SZ}-000001", when, everything, None, False)
        build = measured_run(lake)
        print(f"built a lake of {args.items:,} items in {time.perf_counter() - started:.1f}s", flush=True)

    def hourly(step: int, changed: list[int]) -> dict[str, Any]:
        at = when + dt.timedelta(hours=step)
        unchanged = sorted(set(everything) - set(changed))
        generated = generate(f"{at:%Y%m%dT%H%M%SZ}-{seq + step:06d}", at, changed, unchanged, True)
        return {**measured_run(lake), "generate_s": generated}

    one_before = hourly(1, [rng.randrange(len(everything))])
    print(f"one changed playlist: {one_before}", flush=True)
    print(f"table bytes {table_bytes(lake):,}, cli open {cli_open_s(lake):.3f}s", flush=True)
    runs, maintenance, run_started = [], [], []
    per_run = max(1, round(len(everything) * args.change))

    def keep_days() -> float:
        """The retention as days: the wall time since the oldest of the last `keep_runs` runs started (as the
        product's `table_history_days` would be with hourly runs; since the ninth round a snapshot is kept
        while it was current after that moment, so the snapshot that run replaced is kept too)."""
        kept_from = run_started[-args.keep_runs] if len(run_started) >= args.keep_runs else run_started[0]
        return max(0.0, (time.time() - kept_from) / 86400)

    for step in range(2, args.runs + 2):
        run_started.append(time.time())
        runs.append(hourly(step, rng.sample(everything, per_run)))
        if not args.no_run_expiry:  # what `pipeline.run` does after each transform, with its retention
            runs[-1]["snapshots_expired"] = expire_history(Catalog(lake), keep_days()).snapshots
        if args.maintain_every and (step - 1) % args.maintain_every == 0:
            m = maintain(LocalStorage(lake), Catalog(lake), keep_days(), orphan_age=dt.timedelta(0))
            maintenance.append({"after_run": step - 1, **m.as_dict()})
            print(f"maintain after run {step - 1}: {maintenance[-1]}", flush=True)
        runs[-1]["lake_bytes"] = sum(files(lake).values())
        runs[-1]["lake_over_table_bytes"] = round(runs[-1]["lake_bytes"] / max(1, table_bytes(lake)), 3)
        runs[-1]["lake_over_live_bytes"] = round(runs[-1]["lake_bytes"] / max(1, live_bytes(lake)), 3)
        print(f"run {step - 1}/{args.runs}: {runs[-1]}", flush=True)
        if args.out:  # what a long benchmark cut short still leaves behind; replaced by the result at the end
            partial = {"partial": True, "build": build, "one_playlist_first": one_before, "runs": runs}
            args.out.write_text(json.dumps({**partial, "maintenance": maintenance}, indent=1))
    one_after = hourly(args.runs + 2, [rng.randrange(len(everything))])
    end_files = files(lake)
    tables = table_bytes(lake)
    referenced = sum(len(referenced_files(Catalog(lake), n)) for n in Catalog(lake).table_names())
    result = {
        "items": args.items,
        "layout": "whole-table overwrites" if args.no_layout else f"sorted, {publish.PUBLISH_ROWS}-row files",
        "change": args.change,
        "build": build,
        "runs": runs,
        "maintenance": maintenance,
        "median_run": {k: statistics.median(r[k] for r in runs) for k in runs[0] if k != "data_bytes_by_table"}
        if runs
        else {},
        "one_playlist_first": one_before,
        "one_playlist_last": one_after,
        "cli_open_s": round(cli_open_s(lake), 3),
        "table_bytes": tables,
        "table_bytes_by_table": table_bytes_by_table(lake),
        "lake_bytes": sum(end_files.values()),
        "lake_files": len(end_files),
        "lake_bytes_by_kind": lake_breakdown(lake),
        "referenced_files": referenced,
    }
    result["lake_over_table_bytes"] = round(result["lake_bytes"] / max(1, tables), 2)
    result["live_bytes"] = live_bytes(lake)
    result["lake_over_live_bytes"] = round(result["lake_bytes"] / max(1, result["live_bytes"]), 2)
    for ratio in ("lake_over_table_bytes", "lake_over_live_bytes"):
        if runs:  # measured after each run (and its maintain): the worst point of the week, and where
            worst = max(runs, key=lambda r: r[ratio])
            result[f"{ratio}_max"] = worst[ratio]
            result[f"{ratio}_max_after_run"] = runs.index(worst) + 1
    result["one_playlist_bytes_share"] = round(one_after["bytes_written"] / max(1, tables), 4)
    summary = {k: v for k, v in result.items() if k not in ("runs", "maintenance")}
    print(json.dumps(summary, indent=1))
    if args.out:
        args.out.write_text(json.dumps(result, indent=1))
    pool.shutdown()


if __name__ == "__main__":
    main()
