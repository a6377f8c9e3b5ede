"""History raw parts are Parquet, written once by the import and read by every transform: one row per play,
`meta` and a typed `body` holding every field of the element as received (private fields dropped, unknown
ones kept as JSON in `body.extra`), in element order; they pass the raw zone's own check, and a changed one
is caught. Parts of the older gzipped NDJSON form (existing lakes) are still read and checked."""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import json
from pathlib import Path
from typing import Any

import duckdb
import pytest

from spotify_pipeline import Lake
from spotify_pipeline.config import load_settings
from spotify_pipeline.errors import InputError, LakeError
from spotify_pipeline.lake.layout import manifest_key
from spotify_pipeline.lake.raw import verify_part
from spotify_pipeline.lake.storage import LocalStorage
from spotify_pipeline.quality.lake_checks import verify_raw_zone
from spotify_pipeline.query.engine import QueryEngine
from spotify_pipeline.tables.catalog import Catalog

ELEMENTS: list[dict[str, Any]] = [
    {
        "ts": "2024-01-31T23:59:07Z",
        "ms_played": 1,
        "master_metadata_track_name": 'Björk – Jóga "live"\n',
        "ip_addr": "198.51.100.7",
        "offline_timestamp": 1706745547000,
    },
    {"ts": "2024-02-01T00:00:00Z", "ms_played": 0, "master_metadata_track_name": None, "shuffle": False},
    {"ts": "2024-02-01T00:00:01Z", "ms_played": 9, "episode_name": "東京 🎧 \\ back\\slash", "shuffle": True},
]


def _lake(tmp_path: Path) -> Lake:
    return Lake.open(settings=load_settings({"lake": str(tmp_path / "lake")}, env={}))


def _parts(tmp_path: Path) -> list[Path]:
    return sorted((tmp_path / "lake" / "raw" / "history_export").rglob("part-*"))


def _write(path: Path, elements: list[dict[str, Any]]) -> Path:
    path.write_text(json.dumps(elements, indent=2, ensure_ascii=False))
    return path


def _body(part: Path) -> list[dict[str, Any]]:
    con = duckdb.connect()
    rows = con.execute(f"SELECT body FROM read_parquet('{part}')").fetchall()
    return [r[0] for r in rows]


def test_an_import_writes_parquet_parts_holding_every_field_in_order(tmp_path: Path) -> None:
    source = _write(tmp_path / "Streaming_History_Audio_2024.json", ELEMENTS)
    _lake(tmp_path).import_history(source, user="u")
    (part,) = _parts(tmp_path)
    assert part.name.endswith(".parquet")
    bodies = _body(part)
    assert [b["ts"] for b in bodies] == [e["ts"] for e in ELEMENTS]  # element order
    assert bodies[0]["master_metadata_track_name"] == 'Björk – Jóga "live"\n'
    assert bodies[2]["episode_name"] == "東京 🎧 \\ back\\slash"
    assert [b["shuffle"] for b in bodies] == [None, False, True]
    assert json.loads(bodies[0]["offline_timestamp"]) == 1706745547000
    assert all(b["extra"] is None for b in bodies)
    assert "198.51.100.7" not in part.read_bytes().decode("latin-1")  # private fields never written
    meta = duckdb.connect().execute(f"SELECT DISTINCT meta FROM read_parquet('{part}')").fetchall()
    assert [m[0]["file"] for m in meta] == ["Streaming_History_Audio_2024.json"]
    assert verify_raw_zone(LocalStorage(tmp_path / "lake")) == []


def test_unknown_fields_are_kept_as_json_in_the_part(tmp_path: Path) -> None:
    elements = [dict(e) for e in ELEMENTS]
    elements[1]["new_field_2027"] = {"nested": [1, 2.5, "x"]}
    source = _write(tmp_path / "Streaming_History_Audio_2024.json", elements)
    result = _lake(tmp_path).import_history(source, user="u")
    assert result.unknown_fields == {"new_field_2027": 1}
    bodies = _body(_parts(tmp_path)[0])
    assert [b["extra"] if b["extra"] is None else json.loads(b["extra"]) for b in bodies] == [
        None,
        {"new_field_2027": {"nested": [1, 2.5, "x"]}},
        None,
    ]
    assert bodies[1]["ts"] == "2024-02-01T00:00:00Z" and bodies[1]["shuffle"] is False


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"ms_played": "12"}, "element 4321: `ms_played` is not a whole number"),
        ({"ts": "2024-02-30T00:00:00Z"}, "element 4321: `ts` is not a UTC time"),
        ({"shuffle": "yes"}, "element 4321: `shuffle` is not true, false or null"),
        ({"platform": 5}, "element 4321: `platform` is not a string or null"),
    ],
)
def test_the_bad_element_is_named_deep_in_a_large_file(tmp_path: Path, bad: dict[str, Any], message: str) -> None:
    elements = [
        {"ts": f"2024-01-01T{n // 3600 % 24:02d}:{n // 60 % 60:02d}:{n % 60:02d}Z", "ms_played": n, "platform": "x"}
        for n in range(5000)
    ]
    elements[4320] |= bad
    source = _write(tmp_path / "Streaming_History_Audio_big.json", elements)
    with pytest.raises(InputError, match=message):
        _lake(tmp_path).import_history(source, user="u")
    assert _parts(tmp_path) == []


def test_a_changed_parquet_part_is_caught(tmp_path: Path) -> None:
    _lake(tmp_path).import_history(_write(tmp_path / "Streaming_History_Audio_2024.json", ELEMENTS), user="u")
    (part,) = _parts(tmp_path)
    data = bytearray(part.read_bytes())
    manifest = json.loads(next((tmp_path / "lake" / "raw" / "_manifests").rglob("*.json")).read_text())
    (entry,) = manifest["files"]
    assert entry["records"] == 3 and verify_part(entry, bytes(data)) is None
    data[len(data) // 2] ^= 0xFF
    assert verify_part(entry, bytes(data)) == "content differs from the manifest (sha256)"
    assert verify_part({"records": 3}, bytes(data[: len(data) // 2])) is not None  # truncated: unreadable
    assert verify_part({"records": 4}, part.read_bytes()) == "3 records, the manifest says 4"


def test_older_ndjson_history_parts_are_still_read_and_checked(tmp_path: Path) -> None:
    """A lake written before the parts were Parquet: its gzipped NDJSON part rebuilds the same listens."""
    lake = tmp_path / "lake"
    storage = LocalStorage(lake)
    run_id, day = "20250101T000000Z-abcdef", dt.date(2025, 1, 1)
    meta = {"run_id": run_id, "entity": "history_export", "fetched_at": "2025-01-01T00:00:00+00:00"}
    meta |= {"user_id": "u", "file": "Streaming_History_Audio_2024.json", "format": "extended"}
    elements = [{k: v for k, v in e.items() if k != "ip_addr"} for e in ELEMENTS]
    data = gzip.compress(b"".join(json.dumps({"meta": meta, "body": e}).encode() + b"\n" for e in elements))
    key = f"raw/history_export/extracted_date={day}/run_id={run_id}/part-00001.jsonl.gz"
    storage.write_atomic(key, data)
    entry = {"key": key, "entity": "history_export", "records": 3, "bytes": len(data)}
    entry["sha256"] = hashlib.sha256(data).hexdigest()
    manifest = {"run_id": run_id, "extracted_date": str(day), "files": [entry], "kind": "history_import"}
    manifest |= {"status": "complete", "user_id": "u", "history_files": [], "skipped_files": []}
    storage.write_atomic(manifest_key(day, run_id), json.dumps(manifest).encode())
    assert verify_raw_zone(storage) == []
    Lake.open(settings=load_settings({"lake": str(lake)}, env={})).transform(rebuild=True)
    with QueryEngine(Catalog(lake)) as engine:
        got = engine.execute("SELECT track_name, ms_played, shuffle FROM listens ORDER BY ended_at").rows
    assert [tuple(r) for r in got] == [
        ('Björk – Jóga "live"\n', 1, None),
        (None, 0, False),
        ("東京 🎧 \\ back\\slash", 9, True),
    ]


def test_a_transform_names_a_parquet_part_it_cannot_read(tmp_path: Path) -> None:
    lake = _lake(tmp_path)
    lake.import_history(_write(tmp_path / "Streaming_History_Audio_2024.json", ELEMENTS), user="u")
    (part,) = _parts(tmp_path)
    data = part.read_bytes()
    part.chmod(0o644)
    part.write_bytes(data[:-4] + b"XXXX")  # same size: only reading it can tell
    with pytest.raises(LakeError, match=r"corrupted raw file .*part-00001\.parquet: content differs from the manifest"):
        lake.transform(rebuild=True)


def test_the_strict_path_and_the_checked_path_write_the_same_parts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every format, every kind of value (names with quotes, escapes and emoji, nulls, flags, the unchecked
    `offline_timestamp` and `user_agent`): the part the strict check lets DuckDB's typed reader write is the
    part the checked parse writes."""
    from spotify_pipeline.history import importer

    export = small_export(tmp_path / "export")
    extra = tmp_path / "export" / "Streaming_History_Audio_odd.json"
    _write(extra, [e | {"offline_timestamp": {"odd": [1, None]}} for e in ELEMENTS])

    def parts(lake: str) -> list[tuple[Any, ...]]:
        files = sorted(str(p) for p in (tmp_path / lake / "raw" / "history_export").rglob("*.parquet"))
        assert files
        return (
            duckdb.connect()
            .execute(f"SELECT meta.file, meta.format, meta.user_id, body FROM read_parquet({files}) ORDER BY ALL")
            .fetchall()
        )

    real = importer.strict_plays
    accepted: list[int | None] = []
    checked_paths: list[str] = []

    def spy(path: Path, fmt: Any) -> int | None:
        accepted.append(real(path, fmt))
        return accepted[-1]

    monkeypatch.setattr(importer, "strict_plays", spy)
    monkeypatch.setattr(importer, "check_file", None)  # the checked parse must not run at all
    Lake.open(settings=load_settings({"lake": str(tmp_path / "strict")}, env={})).import_history(export, user="u")
    assert len(accepted) >= 6 and None not in accepted  # every file went the strict way the first time
    monkeypatch.undo()
    monkeypatch.setattr(importer, "strict_plays", lambda path, fmt: checked_paths.append(path.name))  # None
    Lake.open(settings=load_settings({"lake": str(tmp_path / "checked")}, env={})).import_history(export, user="u")
    assert len(checked_paths) >= 6  # every file went the checked way the second time
    assert parts("strict") == parts("checked")


def small_export(folder: Path) -> Path:
    """A simulated download of 60 plays in every format, 25 plays a file: the parts' tests' common input."""
    from spotify_pipeline.simulator import Catalog as SimCatalog
    from spotify_pipeline.simulator import CatalogConfig
    from spotify_pipeline.simulator.history import write_export

    return write_export(
        SimCatalog(CatalogConfig(playlists=3, items_per_playlist=20)),
        "alice",
        folder,
        plays=60,
        per_file=25,
        form="folder",
        formats=("extended", "legacy", "account"),
    ).path
