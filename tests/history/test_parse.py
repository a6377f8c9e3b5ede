"""The one-parse reader (`_load_fast`) against the step-by-step checked reader (`_load_checked`): on every
format the simulator writes (quirks, unknown fields, a file under another name) both give the same plays,
format, unknown fields, stored text and typed fields; on bad files the fast reader declines and the checked
one names the problem."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import duckdb
import pytest

from spotify_pipeline.errors import InputError
from spotify_pipeline.history.formats import format_by_name
from spotify_pipeline.history.parse import _load_checked, _load_fast, parse_files
from spotify_pipeline.history.reader import ExportFile
from spotify_pipeline.simulator import Catalog as SimCatalog
from spotify_pipeline.simulator import CatalogConfig
from spotify_pipeline.simulator.history import write_export


def _stored(con: duckdb.DuckDBPyConnection) -> list[tuple[Any, ...]]:
    return con.execute("SELECT i, j::VARCHAR, body FROM export_plays ORDER BY i").fetchall()


def _both(path: Path, name: str) -> tuple[Any, Any]:
    source = ExportFile(name, path, "sha", path.stat().st_size, format_by_name(name))
    results = []
    for load in (_load_fast, _load_checked):
        con = duckdb.connect()
        parse_files(con, [])  # creates the empty export_plays
        got = load(con, 0, source)
        results.append((got and (got.plays, got.fmt.name, got.unknown_fields), _stored(con)))
        con.close()
    return results[0], results[1]


def test_fast_and_checked_readers_agree_on_every_format(tmp_path: Path) -> None:
    catalog = SimCatalog(CatalogConfig(playlists=2, items_per_playlist=20))
    export = write_export(
        catalog,
        "alice",
        tmp_path / "d",
        plays=90,
        per_file=25,
        formats=("extended", "legacy", "account"),
        form="folder",
        extra_field=True,
    )
    names = [n for n in export.files if format_by_name(n) is not None]
    assert {format_by_name(n).name for n in names} == {"extended", "legacy", "account_music", "account_podcast"}  # type: ignore[union-attr]
    for name in names:
        fast, checked = _both(tmp_path / "d" / name, name)
        assert fast[0] is not None, name  # the fast reader took the file
        assert fast == checked, name
    renamed = tmp_path / "my plays.json"
    renamed.write_bytes((tmp_path / "d" / names[0]).read_bytes())
    fast, checked = _both(renamed, "my plays.json")
    assert fast[0] is not None and fast == checked


@pytest.mark.parametrize(
    "text",
    [
        '[{"ts": "2024-01-01T00:00:00Z", "ms_pl',
        '{"ts": 1}',
        "[1, 2]",
        "[{}]",
        '[{"ts": "2024-01-01T00:00:00Z", "ms_played": "12"}]',
        '[{"ts": "2024-01-01T00:00:00Z", "ms_played": 1, "shuffle": "yes"}]',
        '[{"ts": "2024-01-01T00:00:00Z", "ms_played": 1, "platform": 5}]',
        '[{"ts": "2024-01-01T00:00:00Z", "ms_played": 1.5}]',
        '[{"ts": "2024-01-01 00:00", "ms_played": 1}]',
        '[{"ts": null, "ms_played": 1}]',
        '[{"ms_played": 1}]',
    ],
)
def test_the_fast_reader_declines_what_the_checked_reader_refuses(tmp_path: Path, text: str) -> None:
    path = tmp_path / "Streaming_History_Audio_1.json"
    path.write_text(text)
    source = ExportFile(path.name, path, "sha", len(text), format_by_name(path.name))
    con = duckdb.connect()
    parse_files(con, [])
    assert _load_fast(con, 0, source) is None
    with pytest.raises(InputError):
        _load_checked(con, 0, source)


def test_private_fields_are_not_in_the_stored_text(tmp_path: Path) -> None:
    path = tmp_path / "endsong_0.json"
    element = {"ts": "2024-01-01T00:00:00Z", "ms_played": 1, "ip_addr_decrypted": "192.0.2.7", "username": "u"}
    path.write_text(json.dumps([element | {"user_agent_decrypted": "UA/1", "ip_addr": "192.0.2.8"}]))
    fast, checked = _both(path, path.name)
    assert fast == checked and fast[0] is not None
    assert "192.0.2" not in str(fast[1]) and "UA/1" not in str(fast[1])
