"""Two widely used Spotify clients, spotipy and tekore, against the simulator over real HTTP.

Every endpoint the simulator serves is called through both clients, in both access modes, with every token
flow the clients offer (client credentials, authorization code with the client secret, PKCE). tekore builds
a pydantic model of every response and warns about any field its models do not know; the suite turns
warnings into errors, so an invented, missing or mistyped field fails here as it would fail a user.

Where a client is itself behind the 2026 API, the test asserts exactly that gap and nothing more
(`CLIENT_GAPS`), so the gap is documented and a simulator regression behind it still fails.

The clients are pointed at the simulator through their public surface only: spotipy's `prefix` and its
auth managers' `OAUTH_TOKEN_URL` attribute (both read per request), and for tekore a sender
(`tekore.ExtendingSender`, its documented extension point) that sends Spotify's URLs to the simulator.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Iterator
from typing import Any

import httpx
import pydantic
import pytest
import spotipy
import tekore as tk

from spotify_pipeline.simulator import Catalog, CatalogConfig, SimulatedSpotify

REDIRECT = "http://127.0.0.1:8765/callback"
SCOPE = "user-read-private user-library-read user-read-recently-played user-top-read playlist-read-private"
API = "https://api.spotify.com/v1/"
ACCOUNTS = "https://accounts.spotify.com"

CLIENT_GAPS = """
Where the clients themselves are behind the 2026 Web API (tekore 6.2, spotipy 2.26):

1. tekore's models require `popularity` (FullTrack, FullArtist, FullAlbum), `followers` (FullArtist) and
   `label` (FullAlbum). Development Mode no longer returns them (February 2026), so tekore raises a
   pydantic ValidationError for every full track, artist and album there; the tests assert that these
   missing fields are the only errors.
2. tekore's `playlist_items` reads the deprecated `/playlists/{id}/tracks`, which answers 403 to
   Development Mode apps; the items are read through the playlist's `items` page and its `next` links.
3. tekore has no call for `/me/library/contains` (its `saved_*_contains` use the deprecated
   `/me/{type}/contains`); spotipy covers that endpoint.
4. tekore's default `limit` of `search` and `artist_albums` (20) is above Development Mode's cap (10), and
   so is spotipy's default for `artist_albums`: the tests pass `limit` explicitly.
5. tekore requires the deprecated `tracks` on FullPlaylist and SimplePlaylist; responses in the current
   shape only (`items_shape="item"`) fail there with exactly that missing field.
6. tekore's PlaylistTrack requires `added_at` and `added_by`, which the API documents (and sends) as null
   on very old playlist items; a playlist with such an item fails there, and only there.
7. tekore crashes with AttributeError on a local file in a playlist: the local file's null `album_type` and
   `release_date_precision` reach tekore's StrEnum._missing_ (which calls `.lower()` on None) while pydantic
   tries FullPlaylistTrack, the first member of the item union, before LocalPlaylistTrack.
"""
# Fields the Development Mode removes that tekore's models still require (gap 1).
TEKORE_REQUIRES_REMOVED = {"popularity", "followers", "label"}


class SimulatorSender(tk.ExtendingSender):
    """Sends tekore's requests for api.spotify.com and accounts.spotify.com to the simulator."""

    def __init__(self, server: SimulatedSpotify) -> None:
        super().__init__(tk.SyncSender())
        self.server = server

    def send(self, request: Any) -> Any:
        request.url = _local(self.server, request.url)
        return self.sender.send(request)


def _local(server: SimulatedSpotify, url: str) -> str:
    if url.startswith(API):
        return server.api_url + "/" + url[len(API) :]
    if url.startswith(ACCOUNTS):
        return server.accounts_url + url[len(ACCOUNTS) :]
    return url


def _approve(server: SimulatedSpotify, authorize_url: str) -> str:
    """Plays the user at the consent page: returns the redirect the browser would follow."""
    consent = httpx.get(_local(server, authorize_url), follow_redirects=False)
    assert consent.status_code == 302, consent.text
    return str(consent.headers["Location"])


def _code(redirect: str) -> str:
    return urllib.parse.parse_qs(urllib.parse.urlsplit(redirect).query)["code"][0]


# ---- one simulator per access mode, shared by the module --------------------------------------------------
@pytest.fixture(scope="module", params=["extended", "development"])
def server(request: pytest.FixtureRequest) -> Iterator[SimulatedSpotify]:
    # The login user "spotify" owns playlist 0, which has every quirk (null, local, episode, duplicate, old)
    # and more than one page of items, so Development Mode's user token reads it in full too.
    # Playlist 4, also the user's, has no quirks (quirk_rate 0) and more than two pages of 30 items.
    catalog = Catalog(CatalogConfig(mode=request.param, playlists=6, items_per_playlist=120, quirk_rate=0.0))
    with SimulatedSpotify(catalog, login_user="spotify") as sim:
        sim.add_plays("spotify", 40)  # 70 plays: more than the 50 the API keeps
        yield sim


def _dev(server: SimulatedSpotify) -> bool:
    return not server.catalog.extended


# ---- spotipy -----------------------------------------------------------------------------------------------
def _spotipy(server: SimulatedSpotify, auth_manager: Any) -> Any:
    sp = spotipy.Spotify(auth_manager=auth_manager, retries=0, status_retries=0, requests_timeout=10)
    sp.prefix = server.api_url + "/"
    return sp


def _spotipy_manager(server: SimulatedSpotify, flow: str) -> Any:
    cache = spotipy.MemoryCacheHandler()
    if flow == "client_credentials":
        manager = spotipy.SpotifyClientCredentials(server.client_id, server.client_secret, cache_handler=cache)
    elif flow == "authorization_code":
        manager = spotipy.SpotifyOAuth(
            server.client_id, server.client_secret, REDIRECT, scope=SCOPE, cache_handler=cache, open_browser=False
        )
    else:
        manager = spotipy.SpotifyPKCE(server.client_id, REDIRECT, scope=SCOPE, cache_handler=cache, open_browser=False)
    manager.OAUTH_TOKEN_URL = server.accounts_url + "/api/token"
    if flow != "client_credentials":
        manager.OAUTH_AUTHORIZE_URL = server.accounts_url + "/authorize"
        code = manager.parse_response_code(_approve(server, manager.get_authorize_url()))
        if flow == "pkce":
            manager.get_access_token(code, check_cache=False)
        else:
            manager.get_access_token(code, as_dict=False, check_cache=False)
    return manager


@pytest.mark.parametrize("flow", ["client_credentials", "authorization_code", "pkce"])
def test_spotipy_gets_tokens_by_every_flow(server: SimulatedSpotify, flow: str) -> None:
    manager = _spotipy_manager(server, flow)
    token = manager.get_access_token() if flow == "pkce" else manager.get_access_token(as_dict=False)
    assert server.authenticate(f"Bearer {token}").user == (None if flow == "client_credentials" else "spotify")
    if flow != "client_credentials":
        refreshed = manager.refresh_access_token(manager.cache_handler.get_cached_token()["refresh_token"])
        assert server.authenticate(f"Bearer {refreshed['access_token']}").user == "spotify"


def test_spotipy_every_endpoint(server: SimulatedSpotify) -> None:
    sp = _spotipy(server, _spotipy_manager(server, "authorization_code"))
    catalog, dev = server.catalog, _dev(server)
    mine = catalog.id_of("playlist", 0)

    me = sp.me()  # GET /me/ (with the trailing slash)
    assert me["id"] == "spotify" and me["account_id"]
    playlists = sp.current_user_playlists(limit=50)
    assert mine in {p["id"] for p in playlists["items"]}
    assert all(p["items"]["total"] == p["tracks"]["total"] for p in playlists["items"])

    playlist = sp.playlist(mine)
    assert playlist["id"] == mine
    page = sp.playlist_items(mine, limit=50)
    items = list(page["items"])
    while page["next"]:
        page = sp.next(page)
        items += page["items"]
    assert len(items) == catalog.playlist_size(0) > 50
    kinds = {(i["item"] or {}).get("type", "null") for i in items}
    assert {"track", "episode", "null"} <= kinds

    saved = sp.current_user_saved_tracks(limit=50)
    assert saved["total"] == len(catalog.saved_tracks("spotify"))
    played, pages = [], 0
    page = sp.current_user_recently_played(limit=20)
    while page:
        played += page["items"]
        pages += 1
        page = sp.next(page)
    assert len(played) == 50 and pages == 3  # the 50 plays the API keeps, newest first, 20 + 20 + 10
    stamps = [p["played_at"] for p in played]
    assert stamps == sorted(stamps, reverse=True) and len(set(stamps)) == 50
    latest = sp.current_user_recently_played(limit=5, after=int(catalog.play("spotify", 60)[1].timestamp() * 1000))
    assert len(latest["items"]) == 5
    for kind in ("tracks", "artists"):
        top = getattr(sp, f"current_user_top_{kind}")(limit=10, time_range="short_term")
        assert len(top["items"]) == 10

    track_ids = [catalog.id_of("track", i) for i in range(3)]
    album_id, artist_id = catalog.id_of("album", 0), catalog.id_of("artist", catalog.album_artists(0)[0])
    track = sp.track(track_ids[0])
    assert track["external_ids"]["isrc"]  # ISRC and UPC stay in Development Mode (reverted March 2026)
    assert sp.album(album_id)["external_ids"]["upc"]
    assert sp.artist(artist_id)["id"] == artist_id
    album_tracks = sp.album_tracks(album_id)  # GET /albums/{id}/tracks/ (trailing slash)
    assert [t["id"] for t in album_tracks["items"]] == [catalog.id_of("track", i) for i in range(8)]
    discography = sp.artist_albums(artist_id, include_groups="album,single,compilation", limit=10)
    assert album_id in {a["id"] for a in discography["items"]}
    found = sp.search(track["name"], limit=10, type="track,artist,album,playlist")
    assert track_ids[0] in {t["id"] for t in found["tracks"]["items"]}
    assert set(found) == {"tracks", "artists", "albums", "playlists"}

    liked = {t for t, _ in catalog.saved_tracks("spotify")}
    saved_ids = [catalog.id_of("track", t) for t in sorted(liked)[:2]]
    unsaved = catalog.id_of("track", min(set(range(catalog.n_tracks)) - liked))
    assert sp.current_user_saved_tracks_contains([*saved_ids, unsaved]) == [True, True, False]
    assert sp.current_user_saved_items([f"spotify:playlist:{mine}"]) == [True]

    # Batch lookups (GET /tracks/?ids=... with the trailing slash): gone for Development Mode apps.
    for call, ids in ((sp.tracks, track_ids), (sp.albums, [album_id]), (sp.artists, [artist_id])):
        if dev:
            with pytest.raises(spotipy.SpotifyException) as refused:
                call(ids)
            assert refused.value.http_status == 403
        else:
            assert len(next(iter(call(ids).values()))) == len(ids)


def test_spotipy_client_credentials_reads_the_catalog(server: SimulatedSpotify) -> None:
    sp = _spotipy(server, _spotipy_manager(server, "client_credentials"))
    catalog = server.catalog
    pid = catalog.id_of("playlist", 1)
    playlist = sp.playlist(pid)
    assert playlist["name"] == catalog.playlist_name(1)
    if _dev(server):
        assert "items" not in playlist  # no user behind the token: metadata only
        with pytest.raises(spotipy.SpotifyException) as refused:
            sp.playlist_items(pid)
        assert refused.value.http_status == 403
    else:
        assert sp.playlist_items(pid, limit=100)["total"] == catalog.playlist_size(1)
    assert sp.search("a", limit=10)["tracks"]["limit"] == 10
    with pytest.raises(spotipy.SpotifyException) as no_user:
        sp.me()
    assert no_user.value.http_status == 401


# ---- tekore ------------------------------------------------------------------------------------------------
def _tekore_token(server: SimulatedSpotify, flow: str) -> Any:
    creds = tk.Credentials(server.client_id, server.client_secret, REDIRECT, sender=SimulatorSender(server))
    if flow == "client_credentials":
        return creds.request_client_token()
    if flow == "authorization_code":
        url = creds.user_authorisation_url(scope=SCOPE, state="s1")
        return creds.request_user_token(_code(_approve(server, url)))
    url, verifier = creds.pkce_user_authorisation(scope=SCOPE, state="s2")
    return creds.request_pkce_token(_code(_approve(server, url)), verifier)


def _tekore(server: SimulatedSpotify, flow: str = "authorization_code") -> Any:
    return tk.Spotify(_tekore_token(server, flow), sender=SimulatorSender(server))


PLAYLIST_ITEM_MEMBERS = ("FullPlaylistTrack", "FullPlaylistEpisode", "LocalPlaylistTrack")


def _known_gap(error: dict[str, Any], dev: bool) -> bool:
    removed = dev and error["type"] == "missing" and error["loc"][-1] in TEKORE_REQUIRES_REMOVED  # gap 1
    old_item = error["loc"][-1] in ("added_at", "added_by") and error["input"] is None  # gap 6
    return removed or old_item


def _only_known_gaps(error: pydantic.ValidationError, dev: bool, member: str = "FullPlaylistTrack") -> None:
    """Every error is a documented gap. A playlist item is a union: pydantic reports why each member
    failed, so only the errors of the member the item is (`member`) count."""
    others = set(PLAYLIST_ITEM_MEMBERS) - {member}
    problems = [e for e in error.errors() if not others & set(map(str, e["loc"])) and not _known_gap(e, dev)]
    assert not problems, problems


def _only_removed_fields_missing(error: pydantic.ValidationError) -> None:
    """Gap 1: in Development Mode tekore may fail only for the fields the mode removed."""
    _only_known_gaps(error, dev=True)


def _model(server: SimulatedSpotify, call: Any, *args: Any, **kwargs: Any) -> Any:
    """The model tekore builds; in Development Mode, None after checking that only gap 1 stopped it."""
    if not _dev(server):
        return call(*args, **kwargs)
    try:
        return call(*args, **kwargs)
    except pydantic.ValidationError as error:
        _only_removed_fields_missing(error)
        return None


@pytest.mark.parametrize("flow", ["client_credentials", "authorization_code", "pkce"])
def test_tekore_gets_tokens_by_every_flow(server: SimulatedSpotify, flow: str) -> None:
    token = _tekore_token(server, flow)
    assert server.authenticate(f"Bearer {token.access_token}").user == (
        None if flow == "client_credentials" else "spotify"
    )
    if flow != "client_credentials":
        creds = tk.Credentials(server.client_id, server.client_secret, REDIRECT, sender=SimulatorSender(server))
        refresh = creds.refresh_pkce_token if flow == "pkce" else creds.refresh_user_token
        refreshed = refresh(token.refresh_token)
        assert server.authenticate(f"Bearer {refreshed.access_token}").user == "spotify"


def test_tekore_every_endpoint(server: SimulatedSpotify) -> None:
    spotify = _tekore(server)
    catalog, dev = server.catalog, _dev(server)
    mine = catalog.id_of("playlist", 0)

    me = spotify.current_user()  # GET /me/
    assert me.id == "spotify" and me.account_id
    playlists = spotify.followed_playlists(limit=50)
    assert mine in {p.id for p in playlists.items}

    # Every quirk, item by item through tekore's model of a playlist item (the raw page from spotipy):
    # a local file trips gap 7, a very old item gap 6; everything else validates (Development Mode: gap 1).
    raw = _spotipy(server, _spotipy_manager(server, "client_credentials" if not dev else "pkce"))
    for entry, item in zip(catalog.entries(0), raw.playlist(mine)["items"]["items"], strict=False):
        if entry.kind == "local":
            with pytest.raises(AttributeError, match="'NoneType' object has no attribute 'lower'"):
                tk.model.PlaylistTrack(**item)
            continue
        try:
            tk.model.PlaylistTrack(**item)
        except pydantic.ValidationError as error:
            assert entry.added_at is None or dev, error
            kind = "FullPlaylistEpisode" if entry.kind == "episode" else "FullPlaylistTrack"
            _only_known_gaps(error, dev, kind)
    plain = catalog.id_of("playlist", 4)
    playlist = _model(server, spotify.playlist, plain)
    if dev:  # gap 1 stops the full tracks; gap 2: the deprecated /tracks answers 403
        assert playlist is None
        with pytest.raises(tk.Forbidden):
            spotify.playlist_items(plain)
    else:
        assert len(playlist.items.items) == playlist.items.total == catalog.playlist_size(4)
        items = list(spotify.all_items(spotify.playlist_items(plain, limit=30)))  # pages by their `next` links
        assert len(items) == catalog.playlist_size(4) > 60
        assert all(type(i.item).__name__ == "FullPlaylistTrack" and i.item == i.track for i in items)

    saved = _model(server, spotify.saved_tracks, limit=50)
    assert dev or saved.total == len(catalog.saved_tracks("spotify"))
    played = _model(server, spotify.playback_recently_played, limit=20)
    if played is not None:
        assert played.cursors is not None and played.next and "before=" in played.next
        older = spotify.next(played)
        assert older.items[0].played_at < played.items[-1].played_at
    for kind in ("artists", "tracks"):
        _model(server, getattr(spotify, f"current_user_top_{kind}"), time_range="long_term", limit=10)

    track_id, album_id = catalog.id_of("track", 0), catalog.id_of("album", 0)
    artist_id = catalog.id_of("artist", catalog.album_artists(0)[0])
    track = _model(server, spotify.track, track_id)
    assert dev or track.external_ids["isrc"]
    _model(server, spotify.album, album_id)
    _model(server, spotify.artist, artist_id)
    album_tracks = spotify.album_tracks(album_id, limit=50)
    assert [t.id for t in album_tracks.items] == [catalog.id_of("track", i) for i in range(8)]
    discography = spotify.artist_albums(artist_id, include_groups=["album", "single", "compilation"], limit=10)
    assert album_id in {a.id for a in discography.items}
    assert {a.album_group for a in discography.items} <= {"album", "single", "compilation"}

    name = catalog._name("track", 0, 2)
    if dev:
        with pytest.raises(pydantic.ValidationError) as error:
            spotify.search(name, types=("track",), limit=10)
        _only_removed_fields_missing(error.value)
        with pytest.raises(tk.BadRequest):
            spotify.search(name, types=("album",))  # tekore's default limit 20 > 10 (gap 4)
    else:
        (tracks,) = spotify.search(name, types=("track",), limit=10)
        assert track_id in {t.id for t in tracks.items}
    albums, playlists = spotify.search(catalog._name("album", 0, 3), types=("album", "playlist"), limit=10)
    assert album_id in {a.id for a in albums.items} and playlists.limit == 10

    for call, ids in ((spotify.tracks, [track_id]), (spotify.albums, [album_id]), (spotify.artists, [artist_id])):
        if dev:
            with pytest.raises(tk.Forbidden):
                call(ids)
        else:
            assert len(call(ids)) == 1


def test_tekore_client_credentials_reads_the_catalog(server: SimulatedSpotify) -> None:
    spotify = _tekore(server, "client_credentials")
    pid = server.catalog.id_of("playlist", 1)
    if _dev(server):
        header = spotify.playlist(pid, fields="id,name,snapshot_id")  # a dict: no items for an app token
        assert header["id"] == pid
        with pytest.raises(tk.Forbidden):
            spotify.playlist_items(pid)
    else:
        playlist = spotify.playlist(pid)
        assert playlist.items.total == server.catalog.playlist_size(1)
    with pytest.raises(tk.Unauthorised):
        spotify.current_user()


def test_item_only_responses_through_the_clients() -> None:
    """The current shape only (`item`, `items`): spotipy reads it, tekore fails only on `tracks` (gap 5)."""
    catalog = Catalog(CatalogConfig(playlists=3, items_per_playlist=20, quirk_rate=0.0, items_shape="item"))
    with SimulatedSpotify(catalog, login_user="spotify") as server:
        pid = catalog.id_of("playlist", 1)  # no local files (gap 7)
        sp = _spotipy(server, _spotipy_manager(server, "client_credentials"))
        body = sp.playlist(pid)
        assert "tracks" not in body and all("track" not in i for i in body["items"]["items"])
        page = sp.playlist_items(pid, limit=20)
        assert all(set(i) >= {"item", "added_at"} and "track" not in i for i in page["items"])

        spotify = _tekore(server, "client_credentials")
        items = spotify.playlist_items(pid, limit=50)  # PlaylistTrack.track is optional in tekore 6.2
        assert items.total == catalog.playlist_size(1) and all(i.track is None for i in items.items)
        with pytest.raises(pydantic.ValidationError) as error:
            spotify.playlist(pid)
        assert {(e["type"], e["loc"]) for e in error.value.errors()} == {("missing", ("tracks",))}
