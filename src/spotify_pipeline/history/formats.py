"""The listening-history formats Spotify ships in a data download, as data: names, fields, privacy.

| format            | files                                      | one element                                   |
|-------------------|--------------------------------------------|-----------------------------------------------|
| `extended`        | `Streaming_History_Audio_*.json`           | ts (UTC, end of playback), ms_played, URIs... |
| `legacy`          | `endsong_*.json`                           | the same + username, ip/user agent decrypted  |
| `account_music`   | `StreamingHistory_music_*.json`,           | endTime (UTC, minute), artistName, trackName, |
|                   | `StreamingHistory<N>.json`                 | msPlayed; no URIs                             |
| `account_podcast` | `StreamingHistory_podcast_*.json`          | endTime, podcastName, episodeName, msPlayed   |

Every other file of a download (video history, PDFs, account JSON) is skipped and listed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class HistoryFormat:
    name: str
    file_pattern: re.Pattern[str]
    required: frozenset[str]  # every element has these keys (the shape check)
    known: frozenset[str]  # every field Spotify documents for the format (others are reported once)


# Never written anywhere (raw zone, tables, logs, reports): dropped while the export is read.
PRIVATE_FIELDS = ("ip_addr", "ip_addr_decrypted", "user_agent_decrypted")

_EXTENDED_FIELDS = frozenset(
    """ts platform ms_played conn_country ip_addr master_metadata_track_name master_metadata_album_artist_name
    master_metadata_album_album_name spotify_track_uri episode_name episode_show_name spotify_episode_uri
    audiobook_title audiobook_uri audiobook_chapter_uri audiobook_chapter_title reason_start reason_end shuffle
    skipped offline offline_timestamp incognito_mode""".split()
)
_LEGACY_FIELDS = (
    _EXTENDED_FIELDS - {"audiobook_title", "audiobook_uri", "audiobook_chapter_uri", "audiobook_chapter_title"}
) | {"username", "ip_addr_decrypted", "user_agent_decrypted", "user_agent"}

FORMATS: dict[str, HistoryFormat] = {
    f.name: f
    for f in (
        HistoryFormat(
            "extended",
            re.compile(r"^Streaming_History_Audio_.*\.json$", re.IGNORECASE),
            frozenset({"ts", "ms_played"}),
            _EXTENDED_FIELDS,
        ),
        HistoryFormat(
            "legacy",
            re.compile(r"^endsong(_\d+)?\.json$", re.IGNORECASE),
            frozenset({"ts", "ms_played"}),
            _LEGACY_FIELDS,
        ),
        HistoryFormat(
            "account_podcast",
            re.compile(r"^StreamingHistory_podcast_.*\.json$", re.IGNORECASE),
            frozenset({"endTime", "msPlayed", "podcastName", "episodeName"}),
            frozenset({"endTime", "msPlayed", "podcastName", "episodeName"}),
        ),
        HistoryFormat(
            "account_music",
            re.compile(r"^StreamingHistory(_music_.*|\d*)\.json$", re.IGNORECASE),
            frozenset({"endTime", "msPlayed", "artistName", "trackName"}),
            frozenset({"endTime", "msPlayed", "artistName", "trackName"}),
        ),
    )
}


def format_by_name(file_name: str) -> HistoryFormat | None:
    """The format a file of a download holds, from its name (the last path component), or None."""
    base = file_name.replace("\\", "/").rsplit("/", 1)[-1]
    for fmt in FORMATS.values():
        if fmt.file_pattern.match(base):
            return fmt
    return None


def format_by_keys(keys: set[str]) -> HistoryFormat | None:
    """The format whose required keys an element has (for a single file under another name), or None."""
    if {"ts", "ms_played"} <= keys:
        return FORMATS["legacy" if "username" in keys else "extended"]
    for name in ("account_podcast", "account_music"):
        if FORMATS[name].required <= keys:
            return FORMATS[name]
    return None
