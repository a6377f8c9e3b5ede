"""`spotify-pipeline whoami`: who the token belongs to, which access mode the app has, and what it yields."""

from __future__ import annotations

from dataclasses import dataclass

from ..config import Settings
from ..errors import ApiError
from ..pipeline import make_client

# Any well-formed artist ID: a batch lookup answers 200 (extended quota) or 403 (Development Mode).
PROBE_ARTIST = "0OdUWJ0sBjDrqHygGUXeCF"

CAN = {
    "extended": [
        "items of every public playlist, and of the user's own and collaborative ones with a login",
        "batch lookups of artists (50 per request) and albums (20 per request)",
        "popularity, followers, genres, label, ISRC/UPC and markets",
    ],
    "development": [
        "items only of playlists the logged-in user owns or collaborates on",
        "metadata (name, owner, snapshot) of any other playlist",
        "artists and albums one ID at a time (batch lookups are refused)",
        "liked songs, recently played and top items of the logged-in user",
        "ISRC and UPC (their removal was reverted in March 2026)",
    ],
}
CANNOT = {
    "extended": [],
    "development": [
        "items of playlists the user does not own or collaborate on (editorial, other users')",
        "popularity, followers, label and available markets (stay null)",
    ],
}


@dataclass
class AccessReport:
    auth: str  # "user" or "client credentials"
    user_id: str | None
    display_name: str | None
    mode: str  # extended | development

    def lines(self) -> list[str]:
        who = f"{self.display_name} ({self.user_id})" if self.user_id else "no user (client credentials)"
        out = [f"user: {who}", f"auth: {self.auth}", f"access mode: {self.mode}", "can extract:"]
        out += [f"  - {line}" for line in CAN[self.mode]]
        if self.user_id is None:
            out.append("  (user sources need `spotify-pipeline login`: my-playlists, liked, recently-played, top)")
        if CANNOT[self.mode]:
            out.append("cannot extract:")
            out += [f"  - {line}" for line in CANNOT[self.mode]]
        return out


def whoami(settings: Settings) -> AccessReport:
    with make_client(settings) as client:
        auth = "user" if type(client.auth).__name__ == "UserAuth" else "client credentials"
        user_id = display = None
        if auth == "user":
            me = client.get("me").data
            user_id, display = me.get("id"), me.get("display_name")
        try:
            client.get("artists", {"ids": PROBE_ARTIST})
            mode = "extended"
        except ApiError as exc:
            if exc.status != 403:
                raise
            mode = "development"
    return AccessReport(auth, user_id, display, mode)
