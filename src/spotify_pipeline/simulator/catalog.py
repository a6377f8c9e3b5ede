"""A deterministic, lazily generated music catalog: playlists, tracks, albums, artists, episodes.

Nothing is materialised up front: every object is a pure function of (seed, kind, index, version), so a
catalog of hundreds of thousands of playlist items costs no memory until a page of it is requested.
Every catalog, however small, contains each quirk the real API is known for (see `QUIRKS`).

Taste (`CatalogConfig(taste=True)`, `simulate --taste`, the demo and `recommend --evaluate`): without it,
every playlist position is an independent popularity-skewed draw from the whole catalog, so nothing but
popularity can predict a playlist. With it, the catalog has latent structure a recommender can learn:

- scenes: album `a` belongs to scene `a % S` (S = `scenes`, default about one per 12 albums, at least 4);
  a scene is a genre (`_GENRES[s % 10]`) and an era (decade `1960 + 10 * (s // 10 % 7)`); its albums'
  release years fall in that decade and their first artist is one of the scene's artists (`artist % S == s`),
  whose `genres` start with the scene's genre;
- every playlist has a primary scene and a related secondary one (same genre, next era); each position is
  drawn from the primary scene with probability 0.7, from the secondary with 0.2, and from the whole catalog
  (the untasteful draw) with 0.1; within a scene, albums are skewed towards the scene's first ones;
- recently played tracks follow the scenes of the playlist they are played from.

Off by default: existing catalogs (and the tests that pin their draws) are unchanged.
"""

from __future__ import annotations

import datetime as dt
import random
import threading
import urllib.parse
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Literal

from .ids import encode_id

Mode = Literal["extended", "development"]
ItemsShape = Literal["both", "item"]
JSON = dict[str, Any]

QUIRKS = (
    "null_item",  # the item/track object is null (a track no longer available)
    "local",  # a local file: is_local true, null ids, spotify:local: URI
    "episode",  # a podcast episode among the tracks
    "duplicate",  # the same track twice in one playlist
    "old",  # a very old item: added_at and added_by null, or Spotify's placeholders (epoch, empty user id)
)
TRACKS_PER_ALBUM = 8
SHOWS = 7
USERS = ("spotify", "alice", "bob", "carol")
_ODD_NAMES = (
    'Say "Hello"',
    "Rock, Paper, Scissors",
    "Line one\nLine two",
    "🔥 Fire Starter 🔥",
    "東京の夜",
    "Привет, мир",
    "Ünïcödé Ñight",
    "It's a 'quote'",
    "Tab\there",
    "مرحبا",
)
_WORDS = (
    "Blue Night River Gold Echo Glass Summer Neon Velvet Paper Silent Electric Golden Broken Wild Crystal "
    "Midnight Ocean Highway Northern Satellite Honey Fever Shadow Kingdom Garden Radio Dream Thunder Lights"
).split()
_GENRES = (
    "indie pop",
    "synthwave",
    "jazz",
    "hip hop",
    "k-pop",
    "classical",
    "techno",
    "folk",
    "metal",
    "bossa nova",
)
_EPOCH = dt.datetime(2019, 1, 1, tzinfo=dt.UTC)
# Every generated date falls before this fixed day, so none is ever in the future (and the catalog stays the
# same whatever the day it is generated on): positions are spread over [_EPOCH, _DATES_END), compressed for
# playlists too long for the usual 7 hours between two additions.
_DATES_END = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
_ADD_INTERVAL = dt.timedelta(hours=7)
_CHANGES_START = _EPOCH + dt.timedelta(days=2000)
# What Spotify sends for positions it has no date or adder for (very old and editorial ones).
EPOCH_PLACEHOLDER = "1970-01-01T00:00:00Z"


@dataclass(frozen=True)
class CatalogConfig:
    """The size and character of a generated catalog."""

    seed: int = 7
    playlists: int = 5
    items_per_playlist: int = 40
    large_playlist_items: int = 0  # playlist 1 gets this many items when > 0
    quirk_rate: float = 0.03
    tracks: int = 0  # 0 = derived from the number of playlist items
    mode: Mode = "extended"
    # "both": each playlist item carries `item` and its deprecated alias `track`, each playlist `items` and
    # `tracks`; "item": the current names only, as live 2026 responses often come.
    items_shape: ItemsShape = "both"
    # Latent taste: playlists drawn from genre/era scenes instead of uniformly (see the module docstring).
    taste: bool = False
    scenes: int = 0  # 0 = about one scene per 12 albums (at least 4)

    @property
    def total_items_hint(self) -> int:
        return self.playlists * self.items_per_playlist + self.large_playlist_items


@dataclass(frozen=True)
class Entry:
    """One position of a playlist before it is rendered: what kind of item and which catalog object."""

    kind: Literal["track", "episode", "local", "null"]
    ref: int
    added_at: str | None
    added_by: str | None


def _stamp(when: dt.datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def _added_at(playlist: int, pos: int, size: int) -> str:
    """When position `pos` of a playlist of `size` base items was added: in order, never after _DATES_END."""
    start = _EPOCH + dt.timedelta(days=playlist % 300)
    step = min(_ADD_INTERVAL, (_CHANGES_START - start) / max(1, size))
    return _stamp(start + step * pos)


def _change_at(step: int) -> str:
    """When the items of change number `step` were added: a day apart, squeezed towards _DATES_END."""
    room = (_DATES_END - _CHANGES_START).days
    days = step if step < room // 2 else room // 2 + (step - room // 2) * (room // 2) / (step + 1)
    return _stamp(_CHANGES_START + dt.timedelta(days=min(days, room - 1)))


def _rng(seed: int, *parts: object) -> random.Random:
    return random.Random(":".join(str(p) for p in (seed, *parts)))  # nosec B311


@dataclass
class Catalog:
    """The generated catalog. Thread-safe: the only mutable state is the versions, under a lock."""

    config: CatalogConfig = field(default_factory=CatalogConfig)
    _versions: dict[int, int] = field(default_factory=dict)
    _popularity_epoch: int = 0
    _emptied: set[int] = field(default_factory=set)  # playlists whose every item was removed
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        cfg = self.config
        self.n_tracks = cfg.tracks or max(40, cfg.total_items_hint // 3)
        self.n_albums = max(5, -(-self.n_tracks // TRACKS_PER_ALBUM))
        self.n_artists = max(10, self.n_albums // 2)
        self.n_episodes = max(5, self.n_tracks // 50)
        self.n_scenes = min(self.n_albums, cfg.scenes or max(4, self.n_albums // 12))
        self._entries = lru_cache(maxsize=256)(self._build_entries)

    # ---- identities ---------------------------------------------------------------------------------
    def id_of(self, kind: str, index: int) -> str:
        return encode_id(self.config.seed, kind, index)

    def count(self, kind: str) -> int:
        return {
            "playlist": self.config.playlists,
            "track": self.n_tracks,
            "album": self.n_albums,
            "artist": self.n_artists,
            "episode": self.n_episodes,
        }[kind]

    # ---- versions (snapshot changes) ---------------------------------------------------------------
    def version(self, playlist: int) -> int:
        return self._versions.get(playlist, 0)

    def mutate(self, playlists: list[int]) -> None:
        """Change these playlists (items added, removed, reordered; renamed) and move popularity on."""
        with self._lock:
            for index in playlists:
                self._versions[index] = self._versions.get(index, 0) + 1
            self._popularity_epoch += 1

    def empty(self, playlists: list[int]) -> None:
        """Remove every item of these playlists (a new snapshot with 0 items), as an owner clearing one."""
        with self._lock:
            for index in playlists:
                self._emptied.add(index)
                self._versions[index] = self._versions.get(index, 0) + 1

    def snapshot_id(self, playlist: int) -> str:
        seed = self.config.seed
        return encode_id(seed, f"snapshot:{playlist}", self.version(playlist)) + "AAAAAAAAAA"

    # ---- playlist contents ---------------------------------------------------------------------------
    def playlist_size(self, playlist: int) -> int:
        return len(self.entries(playlist))

    def entries(self, playlist: int) -> tuple[Entry, ...]:
        if playlist in self._emptied:
            return ()
        return self._entries(playlist, self.version(playlist))

    def _base_size(self, playlist: int) -> int:
        cfg = self.config
        if cfg.playlists >= 3 and playlist == cfg.playlists - 1:
            return 0  # every catalog has an empty playlist
        if playlist == 1 and cfg.large_playlist_items > 0:
            return cfg.large_playlist_items
        rng = _rng(cfg.seed, "size", playlist)
        size = max(1, int(cfg.items_per_playlist * rng.uniform(0.5, 1.5)))
        return max(TRACKS_PER_ALBUM * 4, size) if playlist == 0 else size  # playlist 0 shows every quirk

    def _pick_track(self, rng: random.Random) -> int:
        # Skewed towards low indices, so tracks, albums and artists are shared across playlists.
        return min(self.n_tracks - 1, int(self.n_tracks * rng.random() ** 2))

    # ---- taste (CatalogConfig.taste) ----------------------------------------------------------------
    def playlist_scenes(self, playlist: int) -> tuple[int, int]:
        """The playlist's primary scene and its related secondary scene (same genre, next era)."""
        primary = _rng(self.config.seed, "scene", playlist).randrange(self.n_scenes)
        return primary, (primary + len(_GENRES)) % self.n_scenes

    def scene_track(self, scene: int, rng: random.Random) -> int:
        """A track of the scene: an album of the scene (skewed towards its first ones), then one of its tracks."""
        albums = max(1, (self.n_albums - scene + self.n_scenes - 1) // self.n_scenes)
        album = scene + self.n_scenes * min(albums - 1, int(albums * rng.random() ** 1.5))
        return min(self.n_tracks - 1, album * TRACKS_PER_ALBUM + rng.randrange(TRACKS_PER_ALBUM))

    def _draw_track(self, playlist: int | None, rng: random.Random) -> int:
        """The track at one playlist position: uniform popularity-skewed, or by the playlist's taste."""
        if not self.config.taste or playlist is None:
            return self._pick_track(rng)
        roll = rng.random()
        if roll >= 0.9:
            return self._pick_track(rng)
        primary, secondary = self.playlist_scenes(playlist)
        return self.scene_track(primary if roll < 0.7 else secondary, rng)

    def _build_entries(self, playlist: int, version: int) -> tuple[Entry, ...]:
        cfg = self.config
        rng = _rng(cfg.seed, "entries", playlist)
        size = self._base_size(playlist)
        owner = self.owner(playlist)
        refs: list[Entry] = []
        for pos in range(size):
            added = _added_at(playlist, pos, size)
            kind = self._quirk_at(playlist, pos, rng)
            added_by: str | None = owner if pos % 5 else USERS[(playlist + pos) % len(USERS)]
            added_at: str | None = added
            ref = self._draw_track(playlist, rng)
            if playlist == 0 and pos < TRACKS_PER_ALBUM * 4 and kind == "track":
                ref = pos  # playlist 0 covers the first albums, so every release-date form is present
            if kind == "duplicate":
                kind, ref = "track", next((e.ref for e in reversed(refs) if e.kind == "track"), ref)
            elif kind == "old":  # Spotify sends either nulls or its placeholders: both forms, by position
                kind = "track"
                added_at, added_by = (None, None) if pos % 2 else (EPOCH_PLACEHOLDER, "")
            elif kind == "episode":
                ref = rng.randrange(self.n_episodes)
            if playlist == 0 and pos == len(QUIRKS) + 1:
                added_at, added_by = EPOCH_PLACEHOLDER, ""  # every catalog has the placeholder form too
            refs.append(Entry(kind, ref, added_at, added_by))  # type: ignore[arg-type]
        for step in range(1, version + 1):
            refs = self._apply_change(playlist, step, refs)
        return tuple(refs)

    def _quirk_at(self, playlist: int, pos: int, rng: random.Random) -> str:
        if playlist == 0 and 1 <= pos <= len(QUIRKS) + 1:
            return {1: "null", 2: "local", 3: "episode", 4: "duplicate", 5: "old"}.get(pos, "track")
        roll = rng.random()
        if roll < self.config.quirk_rate:
            return ("null", "local", "episode", "duplicate", "old")[int(roll / self.config.quirk_rate * 5) % 5]
        return "track"

    def _apply_change(self, playlist: int, step: int, refs: list[Entry]) -> list[Entry]:
        rng = _rng(self.config.seed, "change", playlist, step)
        refs = list(refs)
        if refs:
            del refs[rng.randrange(len(refs))]
        if len(refs) >= 2:
            i, j = rng.randrange(len(refs)), rng.randrange(len(refs))
            refs[i], refs[j] = refs[j], refs[i]
        added = _change_at(step)
        for _ in range(3):
            refs.append(Entry("track", self._draw_track(playlist, rng), added, self.owner(playlist)))
        return refs

    # ---- ownership -----------------------------------------------------------------------------------
    def owner(self, playlist: int) -> str:
        return USERS[playlist % len(USERS)]

    def collaborative(self, playlist: int) -> bool:
        return playlist % 7 == 3

    def collaborators(self, playlist: int) -> tuple[str, ...]:
        """Users who may edit a collaborative playlist besides its owner."""
        if not self.collaborative(playlist):
            return ()
        return (USERS[(playlist + 1) % len(USERS)],)

    def can_edit(self, user: str, playlist: int) -> bool:
        return self.owner(playlist) == user or user in self.collaborators(playlist)

    # ---- a user's library (for user tokens) ----------------------------------------------------------
    def user_playlists(self, user: str) -> list[int]:
        """Owned, collaborative and followed playlists, as /me/playlists lists them."""
        slot = USERS.index(user) % 3 if user in USERS else 0
        return [i for i in range(self.config.playlists) if self.can_edit(user, i) or i % 3 == slot]

    def saved_tracks(self, user: str) -> list[tuple[int, str]]:
        """(track, added_at) of the user's liked songs, newest first."""
        rng = _rng(self.config.seed, "saved", user)
        count = min(self.n_tracks, 30 + rng.randrange(60))
        tracks = rng.sample(range(self.n_tracks), count)
        return [(t, _stamp(_CHANGES_START - dt.timedelta(days=k, hours=-(k % 24)))) for k, t in enumerate(tracks)]

    def play(self, user: str, number: int) -> tuple[int, dt.datetime, int | None]:
        """The user's play number `number` (0 = first ever): track, played_at, context playlist."""
        rng = _rng(self.config.seed, "play", user, number)
        played_at = dt.datetime(2026, 1, 1, tzinfo=dt.UTC) + dt.timedelta(minutes=4 * number, seconds=rng.randrange(60))
        playlist = rng.randrange(self.config.playlists) if rng.random() < 0.6 and self.config.playlists else None
        return self._draw_track(playlist, rng), played_at, playlist

    def top(self, user: str, kind: str, time_range: str) -> list[int]:
        rng = _rng(self.config.seed, "top", user, kind, time_range)
        pool = self.n_artists if kind == "artists" else self.n_tracks
        return rng.sample(range(pool), min(pool, 20))

    def account_id(self, user: str) -> str:
        """The user's `account_id` (May 2026): pseudonymous and stable, unlike the user name."""
        return encode_id(self.config.seed, "account", USERS.index(user) if user in USERS else len(user))

    def user_object(self, user: str, base: str) -> JSON:
        obj = {
            "account_id": self.account_id(user),
            "display_name": user.capitalize(),
            "external_urls": {"spotify": f"https://open.spotify.com/user/{user}"},
            "href": f"{base}/users/{user}",
            "id": user,
            "images": [],
            "type": "user",
            "uri": f"spotify:user:{user}",
        }
        if self.extended:
            obj.update(
                country="DE",
                email=f"{user}@example.com",
                product="premium",
                followers={"href": None, "total": 3},
                explicit_content={"filter_enabled": False, "filter_locked": False},
            )
        return obj

    def simplified_playlist(self, playlist: int, base: str) -> JSON:
        obj = self.playlist_header(playlist, base)
        obj.pop("followers", None)
        pid = obj["id"]
        obj["items"] = {"href": f"{base}/playlists/{pid}/items", "total": self.playlist_size(playlist)}
        if self.config.items_shape == "both":
            obj["tracks"] = {"href": f"{base}/playlists/{pid}/tracks", "total": obj["items"]["total"]}
        return obj

    # ---- names and numbers ---------------------------------------------------------------------------
    def _name(self, kind: str, index: int, words: int = 2) -> str:
        if index % 13 == 5:
            return _ODD_NAMES[(index // 13) % len(_ODD_NAMES)]
        rng = _rng(self.config.seed, "name", kind, index)
        return " ".join(rng.choice(_WORDS) for _ in range(words))

    def track_popularity(self, track: int) -> int:
        base = _rng(self.config.seed, "pop", track).randrange(0, 90)
        return min(100, base + (self._popularity_epoch * (track % 3)) % 11)

    def track_artists(self, track: int) -> list[int]:
        album = track // TRACKS_PER_ALBUM
        primary = self.album_artists(album)[0]
        rng = _rng(self.config.seed, "feat", track)
        extra = rng.sample(range(self.n_artists), k=2) if track % 4 == 1 else []
        return [primary] + [a for a in extra if a != primary]

    def album_artists(self, album: int) -> list[int]:
        rng = _rng(self.config.seed, "album-artist", album)
        first = min(self.n_artists - 1, int(self.n_artists * rng.random() ** 1.5))
        if self.config.taste:  # one of the scene's artists
            scene = album % self.n_scenes
            count = max(1, (self.n_artists - scene + self.n_scenes - 1) // self.n_scenes)
            first = scene + self.n_scenes * min(count - 1, int(count * rng.random() ** 1.5))
        return [first] if album % 9 else [first, (first + 1) % self.n_artists]

    def release_date(self, album: int) -> tuple[str, str]:
        if album % 101 == 0:
            return "0000", "year"
        rng = _rng(self.config.seed, "release", album)
        year, month, day = rng.randrange(1955, 2026), rng.randrange(1, 13), rng.randrange(1, 29)
        if self.config.taste:  # the scene's decade
            year = 1960 + 10 * (album % self.n_scenes // len(_GENRES) % 7) + year % 10
        precision = ("day", "year", "month")[album % 3]
        text = {"year": f"{year}", "month": f"{year}-{month:02d}", "day": f"{year}-{month:02d}-{day:02d}"}
        return text[precision], precision

    # ---- rendering: objects shaped as the OpenAPI document says -------------------------------------
    @property
    def extended(self) -> bool:
        return self.config.mode == "extended"

    def _urls(self, base: str, kind: str, spotify_id: str) -> JSON:
        return {
            "external_urls": {"spotify": f"https://open.spotify.com/{kind}/{spotify_id}"},
            "href": f"{base}/{kind}s/{spotify_id}",
            "id": spotify_id,
            "uri": f"spotify:{kind}:{spotify_id}",
        }

    def _images(self, key: str) -> list[JSON]:
        return [
            {"url": f"https://i.scdn.co/image/{key}{size}", "height": size, "width": size} for size in (640, 300, 64)
        ]

    def artist_simplified(self, artist: int, base: str) -> JSON:
        obj = self._urls(base, "artist", self.id_of("artist", artist))
        obj.update(name=self._name("artist", artist), type="artist")
        return obj

    def artist_full(self, artist: int, base: str) -> JSON:
        obj = self.artist_simplified(artist, base)
        rng = _rng(self.config.seed, "artist-full", artist)
        obj["genres"] = rng.sample(_GENRES, k=artist % 3)
        if self.config.taste:  # the scene's genre first
            genre = _GENRES[artist % self.n_scenes % len(_GENRES)]
            obj["genres"] = [genre] + [g for g in obj["genres"] if g != genre]
        obj["images"] = self._images(obj["id"])
        if self.extended:
            obj["followers"] = {"href": None, "total": rng.randrange(0, 5_000_000)}
            obj["popularity"] = rng.randrange(0, 101)
        return obj

    def album_simplified(self, album: int, base: str) -> JSON:
        obj = self._urls(base, "album", self.id_of("album", album))
        release_date, precision = self.release_date(album)
        obj.update(
            album_type=("album", "single", "compilation")[album % 7 % 3],
            total_tracks=TRACKS_PER_ALBUM,
            images=self._images(obj["id"]),
            name=self._name("album", album, 3),
            release_date=release_date,
            release_date_precision=precision,
            type="album",
            artists=[self.artist_simplified(a, base) for a in self.album_artists(album)],
        )
        if self.extended:
            obj["available_markets"] = ["DE", "GB", "US"]
        else:
            # Development Mode drops available_markets even though AlbumBase lists it as required.
            pass
        return obj

    def album_full(self, album: int, base: str) -> JSON:
        obj = self.album_simplified(album, base)
        first = album * TRACKS_PER_ALBUM
        tracks = [self.track_simplified(t, base) for t in range(first, min(first + TRACKS_PER_ALBUM, self.n_tracks))]
        obj.update(
            tracks={
                "href": f"{base}/albums/{obj['id']}/tracks?offset=0&limit=50",
                "items": tracks,
                "limit": 50,
                "next": None,
                "offset": 0,
                "previous": None,
                "total": len(tracks),
            },
            copyrights=[{"text": f"(C) {self._name('label', album % 40)}", "type": "C"}],
            genres=[],
            # Kept in Development Mode too: its removal (February 2026) was reverted in March 2026.
            external_ids={"upc": f"{album:012d}"},
        )
        if self.extended:
            obj["label"] = f"{self._name('label', album % 40)} Records"
            obj["popularity"] = _rng(self.config.seed, "album-pop", album).randrange(0, 101)
        return obj

    def track_simplified(self, track: int, base: str) -> JSON:
        obj = self._urls(base, "track", self.id_of("track", track))
        rng = _rng(self.config.seed, "track", track)
        obj.update(
            artists=[self.artist_simplified(a, base) for a in self.track_artists(track)],
            disc_number=1,
            duration_ms=rng.randrange(61_000, 420_000),
            explicit=rng.random() < 0.2,
            is_local=False,
            name=self._name("track", track, 2 + track % 2),
            preview_url=None,
            track_number=track % TRACKS_PER_ALBUM + 1,
            type="track",
        )
        return obj

    def track_full(self, track: int, base: str) -> JSON:
        obj = self.track_simplified(track, base)
        obj["album"] = self.album_simplified(track // TRACKS_PER_ALBUM, base)
        obj["external_ids"] = {"isrc": f"QZ{self.config.seed % 100:02d}{track:08d}"[:12]}  # in both modes
        if self.extended:
            obj["available_markets"] = ["DE", "GB", "US"]
            obj["popularity"] = self.track_popularity(track)
        return obj

    def local_track(self, playlist: int, pos: int) -> JSON:
        """A local file as the real API returns it: null ids and hrefs, a spotify:local: URI."""
        name, artist, album = (
            self._name("local", pos),
            self._name("local-artist", playlist),
            "Home Recordings",
        )
        return {
            "album": {
                "album_type": None,
                "artists": [],
                "available_markets": [],
                "external_urls": {},
                "href": None,
                "id": None,
                "images": [],
                "name": album,
                "release_date": None,
                "release_date_precision": None,
                "type": "album",
                "uri": None,
            },
            "artists": [{"external_urls": {}, "href": None, "id": None, "name": artist, "type": "artist", "uri": None}],
            "available_markets": [],
            "disc_number": 0,
            "duration_ms": 180_000 + pos,
            "explicit": False,
            "external_ids": {},
            "external_urls": {},
            "href": None,
            "id": None,
            "is_local": True,
            "name": name,
            "popularity": 0,
            "preview_url": None,
            "track_number": 0,
            "type": "track",
            "uri": f"spotify:local:{artist.replace(' ', '+')}:{album.replace(' ', '+')}:{name.replace(' ', '+')}:180",
        }

    def show(self, show: int, base: str) -> JSON:
        """A SimplifiedShowObject."""
        show_id = self.id_of("show", show)
        obj = self._urls(base, "show", show_id)
        obj.update(
            available_markets=["DE", "GB", "US"] if self.extended else [],
            copyrights=[],
            description="A generated show.",
            explicit=False,
            html_description="<p>A generated show.</p>",
            images=self._images(show_id),
            is_externally_hosted=False,
            languages=["en"],
            media_type="audio",
            name=self._name("show", show),
            publisher="Simulated Podcasts" if self.extended else "",
            total_episodes=self.n_episodes,
            type="show",
        )
        return obj

    def episode(self, episode: int, base: str, simplified: bool = False) -> JSON:
        obj = self._urls(base, "episode", self.id_of("episode", episode))
        obj.update(
            audio_preview_url=None,
            description="An episode.",
            html_description="<p>An episode.</p>",
            duration_ms=1_800_000 + episode,
            explicit=False,
            images=self._images(obj["id"]),
            is_externally_hosted=False,
            is_playable=True,
            languages=["en"],
            name=self._name("episode", episode, 4),
            release_date="2024-03-01",
            release_date_precision="day",
            type="episode",
        )
        if not simplified:
            obj["show"] = self.show(episode % SHOWS, base)
        return obj

    # ---- search and discographies --------------------------------------------------------------------
    def name_of(self, kind: str, index: int) -> str:
        if kind == "track":
            return self._name("track", index, 2 + index % 2)
        if kind == "album":
            return self._name("album", index, 3)
        if kind == "episode":
            return self._name("episode", index, 4)
        if kind == "playlist":
            return self.playlist_name(index)
        return self._name(kind, index)

    def search(self, kind: str, words: list[str]) -> list[int]:
        """Indices of `kind` whose name contains every word (case-insensitive), in catalog order."""
        count = SHOWS if kind == "show" else self.count(kind)
        wanted = [w.casefold() for w in words]
        return [i for i in range(count) if all(w in self.name_of(kind, i).casefold() for w in wanted)]

    def artist_albums(self, artist: int) -> list[int]:
        """Albums on which the artist is an album artist, in catalog order."""
        return [a for a in range(self.n_albums) if artist in self.album_artists(a)]

    def playlist_item(self, playlist: int, pos: int, entry: Entry, base: str, alias: bool = True) -> JSON:
        """A PlaylistTrackObject. `item` is current; `track` is the deprecated alias with the same value
        (left out when `alias` is false). Inside a playlist, tracks and episodes carry `track` and `episode`
        flags saying which they are."""
        item: JSON | None
        if entry.kind == "track":
            item = {**self.track_full(entry.ref, base), "episode": False, "track": True}
        elif entry.kind == "episode":
            item = {**self.episode(entry.ref, base), "episode": True, "track": False}
        elif entry.kind == "local":
            item = {**self.local_track(playlist, pos), "episode": False, "track": True}
        else:
            item = None
        added_by = None
        if entry.added_by is not None:  # "" is Spotify's placeholder user: empty id, URI and links
            added_by = {
                "external_urls": {"spotify": f"https://open.spotify.com/user/{entry.added_by}"},
                "href": f"{base}/users/{entry.added_by}",
                "id": entry.added_by,
                "type": "user",
                "uri": f"spotify:user:{entry.added_by}",
            }
        obj = {
            "added_at": entry.added_at,
            "added_by": added_by,
            "is_local": entry.kind == "local",
            "item": item,
            "primary_color": None,
            "video_thumbnail": {"url": None},
        }
        if alias:
            obj["track"] = item
        return obj

    def items_page(
        self, playlist: int, offset: int, limit: int, base: str, path: str = "items", fields: str | None = None
    ) -> JSON:
        """A PagingPlaylistTrackObject: positions offset..offset+limit-1 with href/next/previous links."""
        entries = self.entries(playlist)
        total = len(entries)
        alias = self.config.items_shape == "both"
        items = [
            self.playlist_item(playlist, pos, entries[pos], base, alias)
            for pos in range(offset, min(offset + limit, total))
        ]
        extra = f"&fields={urllib.parse.quote(fields)}" if fields else ""
        prefix = f"{base}/playlists/{self.id_of('playlist', playlist)}/{path}"

        def link(off: int) -> str:
            return f"{prefix}?offset={off}&limit={limit}{extra}"

        return {
            "href": link(offset),
            "items": items,
            "limit": limit,
            "next": link(offset + limit) if offset + limit < total else None,
            "offset": offset,
            "previous": link(max(0, offset - limit)) if offset > 0 else None,
            "total": total,
        }

    def playlist_name(self, playlist: int) -> str:
        name = self._name("playlist", playlist, 3)
        version = self.version(playlist)
        return f"{name} (v{version + 1})" if version else name

    def playlist_header(self, playlist: int, base: str) -> JSON:
        """A PlaylistObject without its items (they are added by the server, paged)."""
        spotify_id = self.id_of("playlist", playlist)
        obj = self._urls(base, "playlist", spotify_id)
        owner = self.owner(playlist)
        rng = _rng(self.config.seed, "playlist", playlist)
        obj.update(
            collaborative=self.collaborative(playlist),
            description=None if playlist % 4 == 2 else f'Generated playlist #{playlist}, "{self._name("d", playlist)}"',
            followers={"href": None, "total": rng.randrange(0, 1_000_000)},
            images=self._images(spotify_id)[:1],
            name=self.playlist_name(playlist),
            owner={
                "external_urls": {"spotify": f"https://open.spotify.com/user/{owner}"},
                "href": f"{base}/users/{owner}",
                "id": owner,
                "type": "user",
                "uri": f"spotify:user:{owner}",
                "display_name": owner.capitalize(),
            },
            primary_color=None,
            public=not self.collaborative(playlist),
            snapshot_id=self.snapshot_id(playlist),
            type="playlist",
        )
        return obj
