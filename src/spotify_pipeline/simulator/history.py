"""A synthetic Spotify data download for a simulated user, consistent with `/me/player/recently-played`.

Play number n of the export is the catalog's `play(user, n)` (the API serves the last 50 of them), with `ts`
its `played_at` to the second, so an export and the API overlap exactly where they should. Every format
Spotify ships, with the quirks real downloads have: 0 ms plays, unknown tracks with every metadata field
null, episodes, audiobooks, incognito and offline plays, non-ASCII names (the catalog's odd names), the same
play repeated across two files, `skipped` null in the legacy files, and files that are not history at all.
IP addresses and user agents are synthetic and listed in `private_values`, so a test can grep for them.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from .catalog import Catalog

EXTENDED_DIR = "Spotify Extended Streaming History"
ACCOUNT_DIR = "Spotify Account Data"
_AUDIOBOOK_FIELDS = ("audiobook_title", "audiobook_uri", "audiobook_chapter_uri", "audiobook_chapter_title")


@dataclass
class SyntheticExport:
    path: Path
    user: str
    files: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # name in the download -> elements
    skipped: list[str] = field(default_factory=list)  # the files that are not listening history
    private_values: set[str] = field(default_factory=set)  # every IP address and user agent written

    def distinct_detailed_plays(self) -> set[tuple[str, str | None]]:
        """(ts, item URI or names) of every distinct play in the extended and legacy files."""
        out = set()
        for name, elements in self.files.items():
            if "Streaming_History_Audio" in name or "endsong" in name:
                for e in elements:
                    uri = (
                        e.get("spotify_track_uri")
                        or e.get("spotify_episode_uri")
                        or e.get("audiobook_chapter_uri")
                        or f"?{e['ms_played']}"
                    )
                    out.add((e["ts"], uri))
        return out


def _iso(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def extended_plays(catalog: Catalog, user: str, numbers: range) -> list[dict[str, Any]]:
    """Extended-history elements for the user's plays `numbers`, with the quirk records between them."""
    out: list[dict[str, Any]] = []
    for n in numbers:
        track, played_at, _ = catalog.play(user, n)
        # Deterministic synthetic data, not security: seeded per play.
        rng = random.Random(f"export-{catalog.config.seed}-{user}-{n}")  # nosec B311
        obj = catalog.track_full(track, "")
        base = _element(n, rng)
        offline = n % 9 == 2
        out.append(
            {
                **base,
                "ts": _iso(played_at),
                "ms_played": rng.randrange(30_000, int(obj["duration_ms"]) + 1),
                "master_metadata_track_name": obj["name"],
                "master_metadata_album_artist_name": obj["artists"][0]["name"],
                "master_metadata_album_album_name": obj["album"]["name"],
                "spotify_track_uri": obj["uri"],
                "shuffle": n % 3 == 0,
                "offline": offline,
                "offline_timestamp": int(played_at.timestamp()) - 600 if offline else None,
                "incognito_mode": n % 13 == 7,
            }
        )
        quirk_at = played_at + dt.timedelta(seconds=90)  # between two API plays (4 minutes apart)
        if n % 10 == 1:  # a 0 ms play: started and skipped at once
            out.append({**base, **_track_fields(obj), "ts": _iso(quirk_at), "ms_played": 0, "skipped": True})
        elif n % 17 == 3:  # an unknown item: every metadata field null
            out.append({**base, "ts": _iso(quirk_at), "ms_played": rng.randrange(1000, 200_000)})
        elif n % 11 == 4:  # a podcast episode
            episode = catalog.episode(n % catalog.n_episodes, "")
            out.append(
                {
                    **base,
                    "ts": _iso(quirk_at),
                    "ms_played": rng.randrange(60_000, 1_800_000),
                    "episode_name": episode["name"],
                    "episode_show_name": episode["show"]["name"],
                    "spotify_episode_uri": episode["uri"],
                }
            )
        elif n % 23 == 5:  # an audiobook chapter
            book = catalog.id_of("album", 10_000 + n)
            out.append(
                {
                    **base,
                    "ts": _iso(quirk_at),
                    "ms_played": rng.randrange(60_000, 1_200_000),
                    "audiobook_title": "Der Zauberberg – Hörbuch",
                    "audiobook_uri": f"spotify:audiobook:{book}",
                    "audiobook_chapter_uri": f"spotify:chapter:{catalog.id_of('track', 10_000 + n)}",
                    "audiobook_chapter_title": f"Kapitel {n}",
                }
            )
    return out


def track_play(
    ts: str, track: int, ms_played: int, *, artist: str, album: str, ip: str = "198.51.100.1", shuffle: bool = False
) -> dict[str, Any]:
    """One extended-history element of synthetic track number `track` (its URI and name from the number),
    every other field as a plain finished play has it: what the benchmark and tests generate by the million."""
    return {
        "ts": ts,
        "platform": "android",
        "ms_played": ms_played,
        "conn_country": "DE",
        "ip_addr": ip,
        "master_metadata_track_name": f"Track {track}",
        "master_metadata_album_artist_name": artist,
        "master_metadata_album_album_name": album,
        "spotify_track_uri": f"spotify:track:{track:022d}",
        **dict.fromkeys(
            """episode_name episode_show_name spotify_episode_uri audiobook_title audiobook_uri audiobook_chapter_uri
            audiobook_chapter_title""".split()
        ),
        "reason_start": "trackdone",
        "reason_end": "trackdone",
        "shuffle": shuffle,
        "skipped": False,
        "offline": False,
        "offline_timestamp": None,
        "incognito_mode": False,
    }


def _track_fields(obj: dict[str, Any]) -> dict[str, Any]:
    return {
        "master_metadata_track_name": obj["name"],
        "master_metadata_album_artist_name": obj["artists"][0]["name"],
        "master_metadata_album_album_name": obj["album"]["name"],
        "spotify_track_uri": obj["uri"],
    }


def _element(n: int, rng: random.Random) -> dict[str, Any]:
    """Every field of an extended element, null where a kind of play has none."""
    return {
        "ts": None,
        "platform": rng.choice(["android", "ios", "windows", "web_player linux", "Partner sonos_one Sonos Büro"]),
        "ms_played": 0,
        "conn_country": rng.choice(["DE", "SE", "JP"]),
        "ip_addr": f"198.51.100.{n % 254 + 1}",
        "master_metadata_track_name": None,
        "master_metadata_album_artist_name": None,
        "master_metadata_album_album_name": None,
        "spotify_track_uri": None,
        "episode_name": None,
        "episode_show_name": None,
        "spotify_episode_uri": None,
        "audiobook_title": None,
        "audiobook_uri": None,
        "audiobook_chapter_uri": None,
        "audiobook_chapter_title": None,
        "reason_start": rng.choice(["trackdone", "clickrow", "fwdbtn", "appload"]),
        "reason_end": rng.choice(["trackdone", "fwdbtn", "endplay", "logout"]),
        "shuffle": False,
        "skipped": False,
        "offline": False,
        "offline_timestamp": None,
        "incognito_mode": False,
    }


def _legacy(element: dict[str, Any], user: str, n: int) -> dict[str, Any]:
    legacy = {k: v for k, v in element.items() if k not in _AUDIOBOOK_FIELDS}
    legacy["username"] = user
    legacy["ip_addr_decrypted"] = legacy.pop("ip_addr")
    legacy["user_agent_decrypted"] = f"unknown-agent/{n} (SimSpotify privacy-test-agent)"
    if n % 4 == 0:
        legacy["skipped"] = None
    return legacy


def _account(element: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
    end = element["ts"][:16].replace("T", " ")
    if element["spotify_track_uri"]:
        return "music", {
            "endTime": end,
            "artistName": element["master_metadata_album_artist_name"],
            "trackName": element["master_metadata_track_name"],
            "msPlayed": element["ms_played"],
        }
    if element["spotify_episode_uri"]:
        return "podcast", {
            "endTime": end,
            "podcastName": element["episode_show_name"],
            "episodeName": element["episode_name"],
            "msPlayed": element["ms_played"],
        }
    return None


Form = Literal["zip", "folder"]


def write_export(
    catalog: Catalog,
    user: str,
    dest: Path,
    *,
    plays: int,
    first_play: int = 0,
    formats: tuple[str, ...] = ("extended",),
    per_file: int = 40,
    form: Form = "zip",
    account_plays: int | None = None,
    extra_field: bool = False,
) -> SyntheticExport:
    """Write a download holding the user's plays `first_play .. plays-1` in `formats` (`extended`, `legacy`,
    `account`) as a zip or a folder at `dest`. Account data covers the last `account_plays` plays (a year)."""
    elements = extended_plays(catalog, user, range(first_play, plays))
    if extra_field:
        for e in elements:
            e["new_field_2027"] = "kept"
    export = SyntheticExport(dest, user)
    if "extended" in formats:
        _split(export, f"{EXTENDED_DIR}/Streaming_History_Audio_{{year}}_{{k}}.json", elements, per_file)
        export.files[f"{EXTENDED_DIR}/Streaming_History_Video_2026.json"] = []
        export.skipped += [f"{EXTENDED_DIR}/Streaming_History_Video_2026.json", f"{EXTENDED_DIR}/ReadMeFirst.pdf"]
    if "legacy" in formats:
        # The legacy files predate audiobooks: none in them.
        legacy = [_legacy(e, user, k) for k, e in enumerate(elements) if not e["audiobook_uri"]]
        _split(export, "MyData/endsong_{k}.json", legacy, per_file)
    if "account" in formats:
        recent = elements[-account_plays:] if account_plays else elements
        music = [a for kind, a in filter(None, map(_account, recent)) if kind == "music"]
        podcasts = [a for kind, a in filter(None, map(_account, recent)) if kind == "podcast"]
        export.files[f"{ACCOUNT_DIR}/StreamingHistory_music_0.json"] = music
        export.files[f"{ACCOUNT_DIR}/StreamingHistory_podcast_0.json"] = podcasts
        export.skipped += [f"{ACCOUNT_DIR}/Userdata.json", f"{ACCOUNT_DIR}/Identity.json"]
    for e in elements:
        export.private_values.add(e["ip_addr"])
    for items in export.files.values():
        for e in items:
            for key in ("ip_addr", "ip_addr_decrypted", "user_agent_decrypted"):
                if e.get(key):
                    export.private_values.add(e[key])
    _write(export, form)
    return export


def _split(export: SyntheticExport, pattern: str, elements: list[dict[str, Any]], per_file: int) -> None:
    """Files of `per_file` elements; each file after the first repeats the previous file's last play."""
    for k, start in enumerate(range(0, len(elements), per_file)):
        chunk = elements[start : start + per_file]
        if k:
            chunk = [elements[start - 1], *chunk]
        export.files[pattern.format(year=chunk[-1]["ts"][:4], k=k)] = chunk


def _extras(name: str) -> bytes:
    if name.endswith(".pdf"):
        return b"%PDF-1.4\n% a read-me, not history\n"
    return json.dumps({"username": "x", "country": "DE"}).encode()


def _write(export: SyntheticExport, form: Form) -> None:
    contents = {name: json.dumps(items, indent=2, ensure_ascii=False).encode() for name, items in export.files.items()}
    for name in export.skipped:
        contents.setdefault(name, _extras(name))
    export.files = {n: v for n, v in export.files.items() if n not in export.skipped}
    if form == "zip":
        export.path.parent.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(export.path, "w", zipfile.ZIP_DEFLATED) as archive:
            for name, data in contents.items():
                archive.writestr(name, data)
    else:
        for name, data in contents.items():
            target = export.path / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
