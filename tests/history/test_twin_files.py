"""`listens` published as copies of `listen_events`' files when the rule keeps every event (publish.py
`TWINS`, writes.py `overwrite_with_copies`): the copies hold exactly the rows the rule gives, each table
keeps files of its own, and nothing is copied when the rule drops an event or the source marks rows deleted."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest

from spotify_pipeline import Lake
from spotify_pipeline.config import load_settings
from spotify_pipeline.tables.catalog import Catalog
from spotify_pipeline.tables.writes import overwrite_with_copies
from spotify_pipeline.transform import publish

from .test_history_layout import USER, _extended, _import, _listens_by_the_rule


def _legacy(n: int) -> dict[str, Any]:
    """Play `n` as the legacy `endsong` files record it: the same listen, ranked below the extended one."""
    play = {k: v for k, v in _extended(n).items() if not k.startswith("audiobook")}
    return play | {"username": USER, "ip_addr_decrypted": None, "user_agent_decrypted": None}


def _digests(paths: list[str]) -> list[str]:
    return sorted(hashlib.sha256(Path(p.removeprefix("file://")).read_bytes()).hexdigest() for p in paths)


def test_a_first_import_copies_the_events_files_as_the_listens_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(publish, "PUBLISH_ROWS", 40)  # 10 files per table
    lake = tmp_path / "lake"
    _import(lake, tmp_path / "first", {"Streaming_History_Audio_2024.json": [_extended(n) for n in range(400)]})
    catalog = Catalog(lake)
    events, listens = catalog.data_files("listen_events"), catalog.data_files("listens")
    assert len(events) == len(listens) == 10
    # Files of its own, in its own folder, each byte for byte one of the events' files: copied, not encoded
    # again (an encoding of the same rows names each file by its own write and differs in its metadata).
    assert all("/listens/data/" in p and "-copy-" in p for p in listens)
    assert not set(events) & set(listens)
    assert _digests(listens) == _digests(events)
    published, expected = _listens_by_the_rule(lake)
    assert published == expected and len(published) == 400
    # Read back through the query engine as any table is: every row, in order by end time within each file.
    rows = Lake.open(settings=load_settings({"lake": str(lake)}, env={})).query("SELECT count(*) AS n FROM listens")
    assert rows.to_pylist() == [{"n": 400}]


def test_listens_are_encoded_from_their_rows_when_the_rule_drops_an_event(tmp_path: Path) -> None:
    """The same 30 plays in the legacy files too: 30 events the rule drops, so `listens` has fewer rows than
    `listen_events` and is written from its own rows."""
    lake = tmp_path / "lake"
    _import(
        lake,
        tmp_path / "first",
        {
            "Streaming_History_Audio_2024.json": [_extended(n) for n in range(100)],
            "endsong_0.json": [_legacy(n) for n in range(70, 100)],
        },
    )
    catalog = Catalog(lake)
    assert not any("-copy-" in p for p in catalog.data_files("listens"))
    published, expected = _listens_by_the_rule(lake)
    assert published == expected and len(published) == 100


def test_no_copy_of_a_table_with_rows_marked_deleted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A later download repeating the newest plays marks their old `listen_events` rows deleted (position
    deletes): its data files then hold rows the table no longer has, so they are never copied."""
    monkeypatch.setattr(publish, "PUBLISH_ROWS", 40)
    lake = tmp_path / "lake"
    _import(lake, tmp_path / "first", {"Streaming_History_Audio_2024.json": [_extended(n) for n in range(100)]})
    _import(lake, tmp_path / "later", {"Streaming_History_Audio_2025.json": [_extended(n) for n in range(95, 120)]})
    catalog = Catalog(lake)
    assert catalog.files("listen_events").deletes, "the later import was expected to mark rows deleted"
    listens = catalog.table("listens")
    before = listens.current_snapshot().snapshot_id
    assert not overwrite_with_copies(listens, catalog.table("listen_events"), 120)
    assert Catalog(lake).table("listens").current_snapshot().snapshot_id == before
    published, expected = _listens_by_the_rule(lake)
    assert published == expected and len(published) == 120
