from __future__ import annotations

from pathlib import Path

import pytest

from spotify_pipeline.errors import InputError
from spotify_pipeline.ids import parse_playlist_ref, parse_playlist_refs, read_playlists_file

PID = "37i9dQZF1DXcBWIGoYBM5M"


@pytest.mark.parametrize(
    "ref",
    [
        PID,
        f"spotify:playlist:{PID}",
        f"https://open.spotify.com/playlist/{PID}",
        f"https://open.spotify.com/playlist/{PID}?si=abc123&pt=x",
        f"https://open.spotify.com/intl-de/playlist/{PID}",
        f"  {PID}  ",
    ],
)
def test_accepted_forms(ref: str) -> None:
    assert parse_playlist_ref(ref) == PID


@pytest.mark.parametrize(
    "ref",
    [
        "",
        "abc",
        PID + "x",
        f"spotify:album:{PID}",
        f"https://example.com/playlist/{PID}",
        f"https://open.spotify.com/album/{PID}",
        "37i9dQZF1DXcBWIGoYBM5!",
    ],
)
def test_rejected_forms_say_what_is_accepted(ref: str) -> None:
    with pytest.raises(InputError) as info:
        parse_playlist_ref(ref)
    assert "spotify:playlist:ID" in str(info.value)


def test_many_refs_dedupe_in_order(tmp_path: Path) -> None:
    other = "1" * 22
    file = tmp_path / "playlists.txt"
    file.write_text(f"# mine\n{other}\n\nspotify:playlist:{PID}  # a comment\n")
    assert parse_playlist_refs([PID, *read_playlists_file(file), PID]) == [PID, other]
