"""A first import hashes the download's files while it checks them (importer.py `_parse_while_hashing`); a
later one hashes first so that files already imported are never parsed. Either way a file repeated within
the download is imported once, and its sha256 is what a later import compares."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from spotify_pipeline import Lake
from spotify_pipeline.config import load_settings
from spotify_pipeline.history import importer
from spotify_pipeline.simulator.history import track_play


def _plays(first: int, count: int) -> list[dict[str, Any]]:
    return [
        track_play(f"2024-01-01T{n // 60:02d}:{n % 60:02d}:00Z", n % 5, 1000 + n, artist="A", album="B")
        for n in range(first, first + count)
    ]


def _lake(tmp_path: Path) -> Lake:
    return Lake.open(settings=load_settings({"lake": str(tmp_path / "lake")}, env={}))


def test_a_file_repeated_in_a_first_download_is_imported_once(tmp_path: Path) -> None:
    folder = tmp_path / "export"
    folder.mkdir()
    (folder / "Streaming_History_Audio_0.json").write_text(json.dumps(_plays(0, 30)))
    (folder / "Streaming_History_Audio_1.json").write_text(json.dumps(_plays(30, 20)))
    (folder / "Streaming_History_Audio_2.json").write_text(json.dumps(_plays(0, 30)))  # a copy of _0
    result = _lake(tmp_path).import_history(folder, user="u")
    assert result.already_imported == ["Streaming_History_Audio_2.json"]
    assert [f["name"] for f in result.files] == ["Streaming_History_Audio_0.json", "Streaming_History_Audio_1.json"]
    assert all(len(f["sha256"]) == 64 for f in result.files) and result.plays == 50
    parts = sorted((tmp_path / "lake" / "raw" / "history_export").rglob("*.parquet"))
    assert sum(pq.read_metadata(p).num_rows for p in parts) == 50
    assert result.transform is not None and result.transform.rows["listens"] == 50
    # The hashes recorded are the files' own: the same download again is found imported, nothing parsed.
    again = _lake(tmp_path).import_history(folder, user="u")
    assert not again.run_id and sorted(again.already_imported) == sorted(p.name for p in folder.iterdir())


def test_a_later_import_parses_only_files_not_imported_before(tmp_path: Path, monkeypatch: Any) -> None:
    folder = tmp_path / "export"
    folder.mkdir()
    (folder / "Streaming_History_Audio_0.json").write_text(json.dumps(_plays(0, 30)))
    _lake(tmp_path).import_history(folder, user="u")
    (folder / "Streaming_History_Audio_1.json").write_text(json.dumps(_plays(30, 20)))
    parsed: list[str] = []
    real = importer.strict_plays
    monkeypatch.setattr(importer, "strict_plays", lambda path, fmt: parsed.append(path.name) or real(path, fmt))
    result = _lake(tmp_path).import_history(folder, user="u")
    assert parsed == ["Streaming_History_Audio_1.json"]
    assert result.already_imported == ["Streaming_History_Audio_0.json"] and result.plays == 20
