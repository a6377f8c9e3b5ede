"""Parse playlist references (ID, URI or URL) into bare Spotify IDs, before any request is made."""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from .errors import InputError

_BASE62_ID = r"[0-9A-Za-z]{22}"
_ID_RE = re.compile(rf"^{_BASE62_ID}$")
_URI_RE = re.compile(rf"^spotify:playlist:({_BASE62_ID})$")
_URL_RE = re.compile(
    rf"^https?://open\.spotify\.com/(?:intl-[A-Za-z-]+/)?(?:embed/)?playlist/({_BASE62_ID})/?(?:[?#].*)?$"
)


def parse_playlist_ref(ref: str) -> str:
    """The 22-character playlist ID in `ref`: an ID, `spotify:playlist:ID` or an open.spotify.com URL."""
    text = ref.strip()
    if _ID_RE.match(text):
        return text
    for pattern in (_URI_RE, _URL_RE):
        match = pattern.match(text)
        if match:
            return match.group(1)
    raise InputError(
        f"not a Spotify playlist reference: {ref!r}",
        hint="use a 22-character ID, spotify:playlist:ID, or https://open.spotify.com/playlist/ID",
    )


def parse_playlist_refs(refs: Iterable[str]) -> list[str]:
    """Parse many references, dropping blanks and duplicates while keeping the given order."""
    seen: dict[str, None] = {}
    for ref in refs:
        if ref.strip():
            seen.setdefault(parse_playlist_ref(ref), None)
    return list(seen)


def read_playlists_file(path: Path) -> list[str]:
    """One reference per line; blank lines and `#` comments are ignored."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise InputError(f"cannot read playlists file {path}: {exc.strerror}") from exc
    return [line.split("#", 1)[0] for line in lines]
