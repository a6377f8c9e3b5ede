"""A small, known listening history written as a real extended-history download, and the listening numbers
computed from it in plain Python (independently of the report SQL)."""

from __future__ import annotations

import collections
import datetime as dt
import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

USER = "alice"
ARTISTS = ["Ångström Trio", "Beta Band", "Cœur d'Acier", "Delta Nine", "Echo Park", "Foxglove", "Gamma Ray"]
PLAY_S = 30  # a listen of 30 s or more is a play


@dataclass
class Listen:
    ts: dt.datetime  # the end of the listen, UTC
    ms: int
    kind: str  # track | episode
    artist: str | None
    song: str | None
    album: str | None
    skipped: bool | None
    incognito: bool

    @property
    def play(self) -> bool:
        return self.ms >= PLAY_S * 1000


def generate(seed: int = 5, count: int = 900) -> list[Listen]:
    """Listens from 2024-10 to 2026-02 (so 2025 has neighbours on both sides), artists first heard on
    different months, some incognito, some skipped, some with no skipped flag, a few podcast episodes."""
    rng = random.Random(seed)
    start = dt.datetime(2024, 10, 1, tzinfo=dt.UTC)
    out = []
    for _ in range(count):
        ts = start + dt.timedelta(seconds=rng.randrange(0, 500 * 86400))
        # artist k is only heard from month 2k on, so new artists spread over the months
        months = (ts.year - 2024) * 12 + ts.month - 10
        pool = [a for k, a in enumerate(ARTISTS) if months >= 2 * k] or ARTISTS[:1]
        artist = rng.choice(pool)
        if rng.random() < 0.06:
            out.append(Listen(ts, rng.randrange(60_000, 2_000_000), "episode", None, None, None, None, False))
            continue
        song_no = rng.randrange(4)
        out.append(
            Listen(
                ts.replace(microsecond=0),
                rng.choice([0, 12_000, rng.randrange(30_000, 320_000), rng.randrange(30_000, 320_000)]),
                "track",
                artist,
                f"{artist} song {song_no}",
                f"{artist} album {song_no % 2}",
                rng.choice([True, False, False, False, None]),
                rng.random() < 0.1,
            )
        )
    return out


def element(listen: Listen, n: int) -> dict[str, Any]:
    track = listen.kind == "track"
    return {
        "ts": listen.ts.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "platform": "android",
        "ms_played": listen.ms,
        "conn_country": "SE",
        "ip_addr": "198.51.100.7",
        "master_metadata_track_name": listen.song,
        "master_metadata_album_artist_name": listen.artist,
        "master_metadata_album_album_name": listen.album,
        "spotify_track_uri": f"spotify:track:{abs(hash(listen.song)) % 10**22:022d}" if track else None,
        "episode_name": None if track else f"Episode {n}",
        "episode_show_name": None if track else "The Show",
        "spotify_episode_uri": None if track else f"spotify:episode:{n:022d}",
        "audiobook_title": None,
        "audiobook_uri": None,
        "audiobook_chapter_uri": None,
        "audiobook_chapter_title": None,
        "reason_start": "trackdone",
        "reason_end": "fwdbtn" if listen.skipped else "trackdone",
        "shuffle": False,
        "skipped": listen.skipped,
        "offline": False,
        "offline_timestamp": None,
        "incognito_mode": listen.incognito,
    }


def write(folder: Path, listens: list[Listen]) -> Path:
    target = folder / "Spotify Extended Streaming History"
    target.mkdir(parents=True)
    by_year: dict[int, list[dict[str, Any]]] = collections.defaultdict(list)
    for n, listen in enumerate(listens):
        by_year[listen.ts.year].append(element(listen, n))
    for year, elements in by_year.items():
        (target / f"Streaming_History_Audio_{year}.json").write_text(json.dumps(elements), encoding="utf-8")
    return folder


def import_lake(folder: Path, listens: list[Listen]) -> Path:
    """The listens written as a download and imported with the real CLI into `folder/lake`."""
    from ..conftest import cli

    write(folder / "download", listens)
    lake = folder / "lake"
    result = cli("import-history", str(folder / "download"), "--lake", str(lake), "--user", USER)
    assert result.returncode == 0, result.stderr
    return lake
