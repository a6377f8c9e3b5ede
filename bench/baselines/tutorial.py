"""BASELINE, not our pipeline: the approach of the typical "Spotify ETL" tutorial, re-implemented minimally
over the same raw pages so it can be timed on the same data. Per-record Python loops build lists of dicts,
pandas DataFrames, drop_duplicates, and one CSV per table. (It also keeps only the first artist per song,
as those tutorials do.)"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from . import page_items


def run(raw_files: list[str], out: Path) -> int:
    songs, albums, artists, playlist_songs = [], [], [], []
    for record, position, item in page_items(raw_files):
        track = item.get("track")
        if not track or not track.get("id") or track.get("type") != "track":
            continue
        album = track["album"]
        artist = track["artists"][0]
        songs.append(
            {
                "song_id": track["id"],
                "song_name": track["name"],
                "duration_ms": track["duration_ms"],
                "song_url": track["external_urls"]["spotify"],
                "song_popularity": track.get("popularity"),
                "song_added": item["added_at"],
                "album_id": album["id"],
                "artist_id": artist["id"],
            }
        )
        albums.append(
            {
                "album_id": album["id"],
                "name": album["name"],
                "release_date": album["release_date"],
                "total_tracks": album["total_tracks"],
                "url": album["external_urls"]["spotify"],
            }
        )
        artists.append(
            {
                "artist_id": artist["id"],
                "artist_name": artist["name"],
                "external_url": artist["external_urls"]["spotify"],
            }
        )
        playlist_songs.append(
            {"playlist_id": record["meta"]["playlist_id"], "position": position, "song_id": track["id"]}
        )
    out.mkdir(parents=True, exist_ok=True)
    frames = {
        "songs": pd.DataFrame(songs).drop_duplicates(subset=["song_id"]),
        "albums": pd.DataFrame(albums).drop_duplicates(subset=["album_id"]),
        "artists": pd.DataFrame(artists).drop_duplicates(subset=["artist_id"]),
        "playlist_songs": pd.DataFrame(playlist_songs),
    }
    frames["albums"]["release_date"] = pd.to_datetime(frames["albums"]["release_date"], errors="coerce")
    frames["songs"]["song_added"] = pd.to_datetime(frames["songs"]["song_added"], errors="coerce")
    for name, frame in frames.items():
        frame.to_csv(out / f"{name}.csv", index=False)
    return len(playlist_songs)
