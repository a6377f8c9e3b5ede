"""Property: any playlist the API could send round-trips raw -> normalize -> Iceberg -> DuckDB intact."""

from __future__ import annotations

import datetime as dt
import json
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spotify_pipeline.lake import LocalStorage, RawZoneWriter
from spotify_pipeline.query.engine import QueryEngine
from spotify_pipeline.tables.catalog import Catalog
from spotify_pipeline.transform import transform

BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
ids = st.text(alphabet=BASE62, min_size=22, max_size=22)
names = st.text(min_size=0, max_size=30)
FETCHED = dt.datetime(2026, 5, 1, 12, 0, tzinfo=dt.UTC)


@st.composite
def tracks(draw: st.DrawFn) -> dict[str, Any]:
    artists = draw(
        st.lists(st.fixed_dictionaries({"id": ids, "name": names}), min_size=1, max_size=3, unique_by=lambda a: a["id"])
    )
    for artist in artists:
        artist.update(type="artist", uri=f"spotify:artist:{artist['id']}")
    album_id = draw(ids)
    return {
        "type": "track",
        "id": draw(ids),
        "name": draw(names),
        "duration_ms": draw(st.integers(1, 10**7)),
        "explicit": draw(st.booleans()),
        "popularity": draw(st.none() | st.integers(0, 100)),
        "artists": artists,
        "album": {
            "id": album_id,
            "name": draw(names),
            "type": "album",
            "uri": f"spotify:album:{album_id}",
            "release_date": "1999-05",
            "release_date_precision": "month",
            "artists": artists[:1],
        },
        "is_local": False,
    }


@st.composite
def playlists(draw: st.DrawFn) -> tuple[str, list[dict[str, Any]]]:
    pool = draw(st.lists(tracks(), min_size=1, max_size=6, unique_by=lambda t: t["id"]))
    for track in pool:
        track["uri"] = f"spotify:track:{track['id']}"
    kinds = draw(st.lists(st.sampled_from(["track", "track", "track", "null", "local", "episode"]), max_size=25))
    items = []
    for kind in kinds:
        added_at = draw(st.none() | st.datetimes(min_value=dt.datetime(2008, 1, 1), max_value=dt.datetime(2026, 1, 1)))
        obj: dict[str, Any] | None
        if kind == "track":
            obj = draw(st.sampled_from(pool))
        elif kind == "episode":
            episode_id = draw(ids)
            obj = {"type": "episode", "id": episode_id, "name": draw(names), "uri": f"spotify:episode:{episode_id}"}
        elif kind == "local":
            obj = {"type": "track", "id": None, "name": draw(names), "uri": "spotify:local:a:b:c:1", "is_local": True}
        else:
            obj = None
        items.append(
            {
                "added_at": added_at.strftime("%Y-%m-%dT%H:%M:%SZ") if added_at else None,
                "added_by": None,
                "is_local": kind == "local",
                "item": obj,
                "track": obj,
            }
        )
    return draw(ids), items


def _write_raw(lake: Path, playlist_id: str, items: list[dict[str, Any]], split: int) -> None:
    writer = RawZoneWriter(LocalStorage(lake), "20260501T120000Z-abcdef", FETCHED.date())
    meta = {"run_id": writer.run_id, "fetched_at": FETCHED.isoformat(), "playlist_id": playlist_id}
    first = {
        "offset": 0,
        "limit": split,
        "total": len(items),
        "items": items[:split],
        "next": None,
        "previous": None,
        "href": "",
    }
    playlist = {"id": playlist_id, "name": "p", "snapshot_id": "s1", "type": "playlist", "items": first}
    writer.write(
        "playlists",
        {**meta, "entity": "playlists", "endpoint": "playlist"},
        json.dumps(playlist, ensure_ascii=False, indent=1).encode(),
    )
    if items[split:]:
        page = {**first, "offset": split, "items": items[split:]}
        writer.write(
            "playlist_items",
            {**meta, "entity": "playlist_items", "endpoint": "playlist_items", "snapshot_id": "s1"},
            json.dumps(page, ensure_ascii=False).encode(),
        )
    writer.close(
        {
            "status": "succeeded",
            "playlists": {playlist_id: {"status": "complete", "snapshot_id": "s1", "items": len(items)}},
        }
    )


def _item_type(item: dict[str, Any]) -> str:
    obj = item["item"]
    if item["is_local"]:
        return "local"
    if obj is None:
        return "unavailable"
    return "episode" if obj["type"] == "episode" else "track"


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(playlists(), st.integers(0, 25))
def test_playlist_round_trips_without_loss_or_invention(playlist: tuple[str, list[dict[str, Any]]], split: int) -> None:
    playlist_id, items = playlist
    with tempfile.TemporaryDirectory() as tmp:
        lake = Path(tmp)
        _write_raw(lake, playlist_id, items, min(split, len(items)))
        transform(LocalStorage(lake), Catalog(lake))
        with QueryEngine(Catalog(lake)) as engine:
            got = engine.execute(
                "SELECT position, item_type, song_id, item_name, added_at FROM playlist_songs ORDER BY position"
            ).rows
            songs = dict(engine.execute("SELECT song_id, name FROM songs").rows)
            links = engine.execute("SELECT song_id, artist_id, position FROM song_artists ORDER BY 1, 3").rows

    expected = []
    for position, item in enumerate(items):
        kind = _item_type(item)
        obj = item["item"]
        added = (
            dt.datetime.strptime(item["added_at"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)
            if item["added_at"]
            else None
        )
        expected.append((position, kind, obj["id"] if kind == "track" else None, obj["name"] if obj else None, added))
    assert [(p, k, s, n, a.astimezone(dt.UTC) if a else None) for p, k, s, n, a in got] == expected

    tracks_seen = {i["item"]["id"]: i["item"] for i in items if _item_type(i) == "track"}
    assert songs == {sid: t["name"] for sid, t in tracks_seen.items()}
    assert links == sorted(
        ((sid, a["id"], pos) for sid, t in tracks_seen.items() for pos, a in enumerate(t["artists"])),
        key=lambda link: (link[0], link[2]),
    )
