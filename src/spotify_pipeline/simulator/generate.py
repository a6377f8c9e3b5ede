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
- recently played tracks follow the scenes of the playlist they are played from;
- playlist names hint at the primary scene: its genre (probability 0.6) and decade ("70s", 0.5) next to a
  random word, so a recommender can continue a playlist from its title alone.

Off by default: existing catalogs (and the tests that pin their draws) are unchanged.
"""

from __future__ import annotations

import datetime as dt
import random
import threading
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
class CatalogData:
    """The catalog's structure: sizes, playlists' entries and their changes, ownership, names and numbers.
    Thread-safe: the only mutable state is the versions, under a lock."""

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

    def refill(self, playlists: list[int]) -> None:
        """Give emptied playlists items again (a new snapshot; popularity moves on, as with `mutate`)."""
        with self._lock:
            self._emptied.difference_update(playlists)
        self.mutate(playlists)

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

    def _taste_name(self, playlist: int) -> str:
        """A name that hints at the playlist's primary scene, as people name playlists ("jazz 70s Velvet"):
        the genre with probability 0.6, the decade ("70s") with 0.5, and one random word; odd names stay."""
        if playlist % 13 == 5:
            return self._name("playlist", playlist, 3)
        scene = self.playlist_scenes(playlist)[0]
        rng = _rng(self.config.seed, "taste-name", playlist)
        words = [rng.choice(_WORDS)]
        if rng.random() < 0.6:
            words.append(_GENRES[scene % len(_GENRES)])
        if rng.random() < 0.5:
            words.append(f"{(1960 + 10 * (scene // 10 % 7)) % 100:02d}s")
        rng.shuffle(words)
        return " ".join(words)

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
