"""The generated catalog as the API shows it: artists, albums, tracks, episodes, playlists and pages shaped as
Spotify's OpenAPI document says, users' libraries, and search. What the catalog holds (sizes, playlists'
entries and changes, ownership, names and numbers) is generated in `generate.py`."""

from __future__ import annotations

import datetime as dt
import urllib.parse

from .generate import (
    _CHANGES_START,
    _GENRES,
    JSON,
    SHOWS,
    TRACKS_PER_ALBUM,
    USERS,
    CatalogData,
    Entry,
    _rng,
    _stamp,
)
from .ids import encode_id


class Catalog(CatalogData):
    """The generated catalog. Thread-safe: the only mutable state is the versions, under a lock."""

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
        name = self._taste_name(playlist) if self.config.taste else self._name("playlist", playlist, 3)
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
