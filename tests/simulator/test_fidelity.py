"""Behaviour of the real 2026 Web API that clients rely on, one point at a time, over real HTTP."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import urllib.parse
from typing import Any

import httpx
import pytest

from spotify_pipeline.simulator import SimulatedSpotify

from ..conftest import SimulatorFactory, api_get, client_token

REDIRECT = "http://127.0.0.1:8765/callback"


def authorize(server: SimulatedSpotify, **params: str) -> httpx.Response:
    query = {"client_id": server.client_id, "response_type": "code", "redirect_uri": REDIRECT, **params}
    return httpx.get(f"{server.accounts_url}/authorize", params=query, follow_redirects=False)


def code_from(response: httpx.Response) -> str:
    assert response.status_code == 302, response.text
    return urllib.parse.parse_qs(urllib.parse.urlsplit(response.headers["Location"]).query)["code"][0]


def user_token(server: SimulatedSpotify) -> str:
    """A user token by the authorization-code flow with the client secret (no PKCE)."""
    code = code_from(authorize(server, scope="user-library-read"))
    response = httpx.post(
        f"{server.accounts_url}/api/token",
        data={"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT},
        auth=(server.client_id, server.client_secret),
    )
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


# ---- accounts -------------------------------------------------------------------------------------------
def test_authorization_code_flow_with_the_client_secret(make_simulator: SimulatorFactory) -> None:
    server = make_simulator(playlists=3)
    token_url = f"{server.accounts_url}/api/token"
    body = {"grant_type": "authorization_code", "redirect_uri": REDIRECT}
    # The secret in a Basic header or in the form; the code is used once.
    code = code_from(authorize(server, state="xyz"))
    basic = httpx.post(token_url, data={**body, "code": code}, auth=(server.client_id, server.client_secret))
    assert basic.status_code == 200 and basic.json()["refresh_token"]
    assert httpx.post(token_url, data={**body, "code": code}, auth=(server.client_id, server.client_secret)).json()[
        "error"
    ] == ("invalid_grant")
    form = {**body, "code": code_from(authorize(server)), "client_id": server.client_id}
    assert httpx.post(token_url, data={**form, "client_secret": server.client_secret}).status_code == 200
    # A wrong secret, or none at all without PKCE, gets nothing.
    wrong = httpx.post(token_url, data={**body, "code": code_from(authorize(server))}, auth=(server.client_id, "no"))
    assert wrong.status_code == 400 and wrong.json()["error"] == "invalid_client"
    bare = httpx.post(token_url, data={**body, "code": code_from(authorize(server)), "client_id": server.client_id})
    assert bare.status_code == 400 and bare.json()["error"] == "invalid_client"
    # A code issued with a PKCE challenge still needs its verifier, secret or not.
    verifier = "v" * 64
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    pkce_code = code_from(authorize(server, code_challenge_method="S256", code_challenge=challenge))
    no_verifier = httpx.post(token_url, data={**body, "code": pkce_code}, auth=(server.client_id, server.client_secret))
    assert no_verifier.status_code == 400 and no_verifier.json()["error"] == "invalid_grant"
    # A refresh with the secret works; with a wrong one it does not.
    refresh = {"grant_type": "refresh_token", "refresh_token": basic.json()["refresh_token"]}
    assert httpx.post(token_url, data=refresh, auth=(server.client_id, server.client_secret)).status_code == 200
    assert httpx.post(token_url, data=refresh, auth=(server.client_id, "no")).json()["error"] == "invalid_client"
    assert authorize(server, response_type="token").status_code == 400


# ---- paths ----------------------------------------------------------------------------------------------
def test_a_trailing_slash_is_accepted(make_simulator: SimulatorFactory) -> None:
    server = make_simulator(playlists=3)
    token = user_token(server)
    ids = ",".join(server.catalog.id_of("track", i) for i in range(2))
    album = server.catalog.id_of("album", 0)
    assert api_get(server, "/me/", token).json()["id"] == server.login_user
    assert len(api_get(server, f"/tracks/?ids={ids}", token).json()["tracks"]) == 2
    assert api_get(server, f"/albums/{album}/tracks/", token).json()["total"] == 8
    assert api_get(server, f"/playlists/{server.playlist_ids()[0]}/", token).status_code == 200
    assert api_get(server, "/nothing/here/", token).status_code == 404


# ---- new endpoints --------------------------------------------------------------------------------------
@pytest.mark.parametrize("mode,default,cap", [("extended", 20, 50), ("development", 5, 10)])
def test_search(make_simulator: SimulatorFactory, mode: str, default: int, cap: int) -> None:
    server = make_simulator(mode=mode, playlists=3, items_per_playlist=60)
    catalog, token = server.catalog, client_token(server)
    name = catalog._name("track", 0, 2)
    found = api_get(server, "/search", token, q=name, type="track,album,artist,playlist").json()
    assert set(found) == {"tracks", "albums", "artists", "playlists"}
    assert catalog.id_of("track", 0) in {t["id"] for t in found["tracks"]["items"]}
    assert all(w.lower() in t["name"].lower() for t in found["tracks"]["items"] for w in name.split())
    assert found["tracks"]["limit"] == default
    assert api_get(server, "/search", token, q="e", type="track", limit=cap).json()["tracks"]["limit"] == cap
    too_many = api_get(server, "/search", token, q="e", type="track", limit=cap + 1)
    assert too_many.status_code == 400 and too_many.json()["error"]["message"] == "Invalid limit"
    everything = api_get(server, "/search", token, q="e", type="track", limit=cap).json()["tracks"]
    if everything["total"] > cap:
        assert "offset=" in everything["next"]
        second = api_get(server, everything["next"], token).json()["tracks"]
        assert second["offset"] == cap and {t["id"] for t in second["items"]}.isdisjoint(
            {t["id"] for t in everything["items"]}
        )
    assert api_get(server, "/search", token, q=name, type="track", offset=1001).status_code == 400
    assert api_get(server, "/search", token, type="track").status_code == 400  # no q
    assert api_get(server, "/search", token, q=name).status_code == 400  # no type
    assert api_get(server, "/search", token, q=name, type="song").status_code == 400
    filtered = api_get(server, "/search", token, q=f"track:{name.split()[0]}", type="track").json()
    assert filtered["tracks"]["items"]


def test_album_tracks_and_artist_albums(make_simulator: SimulatorFactory) -> None:
    for mode, cap in (("extended", 50), ("development", 10)):
        server = make_simulator(mode=mode, playlists=3)
        catalog, token = server.catalog, client_token(server)
        album = catalog.id_of("album", 1)
        page = api_get(server, f"/albums/{album}/tracks", token, limit=3, offset=2).json()
        assert [t["id"] for t in page["items"]] == [catalog.id_of("track", i) for i in (10, 11, 12)]
        assert page["total"] == 8 and "album" not in page["items"][0] and page["next"] and page["previous"]
        assert api_get(server, f"/albums/{'A' * 22}/tracks", token).status_code == 404

        artist = catalog.album_artists(1)[0]
        albums = [a for a in range(catalog.n_albums) if artist in catalog.album_artists(a)]
        body = api_get(server, f"/artists/{catalog.id_of('artist', artist)}/albums", token, limit=cap).json()
        assert [a["id"] for a in body["items"]] == [catalog.id_of("album", a) for a in albums][:cap]
        assert body["total"] == len(albums) and all(a["album_group"] == a["album_type"] for a in body["items"])
        singles = api_get(
            server, f"/artists/{catalog.id_of('artist', artist)}/albums", token, include_groups="single", limit=cap
        ).json()
        assert all(a["album_group"] == "single" for a in singles["items"])
        refused = api_get(server, f"/artists/{catalog.id_of('artist', artist)}/albums", token, limit=cap + 1)
        assert refused.status_code == 400


def test_library_contains(make_simulator: SimulatorFactory) -> None:
    server = make_simulator(playlists=4, items_per_playlist=200)
    catalog, token = server.catalog, user_token(server)
    liked = [t for t, _ in catalog.saved_tracks(server.login_user)]
    other = min(set(range(catalog.n_tracks)) - set(liked))
    mine = catalog.user_playlists(server.login_user)[0]
    uris = [
        f"spotify:track:{catalog.id_of('track', liked[0])}",
        f"spotify:track:{catalog.id_of('track', other)}",
        f"spotify:playlist:{catalog.id_of('playlist', mine)}",
        f"spotify:album:{catalog.id_of('album', 0)}",
    ]
    assert api_get(server, "/me/library/contains", token, uris=",".join(uris)).json() == [True, False, True, False]
    assert api_get(server, "/me/library/contains", token, uris=",".join(uris * 11)).status_code == 400  # > 40
    assert api_get(server, "/me/library/contains", token, uris="spotify:bogus").status_code == 400
    assert api_get(server, "/me/library/contains", token).status_code == 400
    assert api_get(server, "/me/library/contains", client_token(server), uris=uris[0]).status_code == 401


# ---- fields ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["extended", "development"])
def test_fields_of_2026_objects(make_simulator: SimulatorFactory, mode: str) -> None:
    server = make_simulator(mode=mode, playlists=3, items_per_playlist=12, quirk_rate=0.0)
    server.login_user = server.catalog.owner(0)
    token = user_token(server)
    me = api_get(server, "/me", token).json()
    assert me["account_id"] and me["account_id"] != me["id"]
    body = api_get(server, f"/playlists/{server.playlist_ids()[0]}", token).json()
    assert body["tracks"]["total"] == body["items"]["total"] and "primary_color" in body
    items = body["items"]["items"]
    for item in items:
        assert item["primary_color"] is None and item["video_thumbnail"] == {"url": None}
        obj = item["item"]
        if obj is not None:
            assert (obj["track"], obj["episode"]) == ((False, True) if obj["type"] == "episode" else (True, False))
    assert {(i["item"] or {}).get("type") for i in items} >= {"track", "episode"}
    # Objects outside playlists carry no such flags.
    assert "episode" not in api_get(server, f"/tracks/{server.catalog.id_of('track', 0)}", token).json()
    listed = api_get(server, "/me/playlists", token).json()["items"]
    assert all(p["tracks"]["total"] == p["items"]["total"] for p in listed)


def test_development_mode_keeps_external_ids_and_refuses_the_deprecated_tracks_path(
    make_simulator: SimulatorFactory,
) -> None:
    server = make_simulator(mode="development", playlists=3)
    server.login_user = server.catalog.owner(0)
    token = user_token(server)
    track = api_get(server, f"/tracks/{server.catalog.id_of('track', 3)}", token).json()
    album = api_get(server, f"/albums/{server.catalog.id_of('album', 0)}", token).json()
    assert track["external_ids"]["isrc"] and album["external_ids"]["upc"]
    assert "popularity" not in track and "label" not in album  # still removed
    pid = server.playlist_ids()[0]
    assert api_get(server, f"/playlists/{pid}/items", token).status_code == 200
    refused = api_get(server, f"/playlists/{pid}/tracks", token)
    assert refused.status_code == 403 and refused.json()["error"]["status"] == 403


def test_recently_played_pages_by_cursor(make_simulator: SimulatorFactory) -> None:
    server = make_simulator(playlists=3)
    server.add_plays(server.login_user, 40)  # 70 plays; the API keeps the last 50
    token = user_token(server)
    page: dict[str, Any] = api_get(server, "/me/player/recently-played", token, limit=20).json()
    assert "total" not in page
    stamps: list[int] = []
    pages = 0
    while True:
        pages += 1
        items = page["items"]
        cursors = page["cursors"]
        times = [_millis(p["played_at"]) for p in items]
        assert cursors == {"after": str(max(times)), "before": str(min(times))}
        stamps += times
        if page["next"] is None:
            break
        assert f"before={cursors['before']}" in page["next"]
        page = api_get(server, page["next"], token).json()
    assert pages == 3 and len(stamps) == 50 == len(set(stamps)) and stamps == sorted(stamps, reverse=True)
    before = api_get(server, "/me/player/recently-played", token, before=str(stamps[-1])).json()
    assert before["items"] == [] and before["next"] is None and before["cursors"] is None
    assert api_get(server, "/me/player/recently-played", token, before="1", after="1").status_code == 400


def _millis(played_at: str) -> int:
    return int(dt.datetime.fromisoformat(played_at.replace("Z", "+00:00")).timestamp() * 1000)


# ---- the current shape only ------------------------------------------------------------------------------
def test_item_only_shape(make_simulator: SimulatorFactory) -> None:
    both = make_simulator(playlists=3, items_per_playlist=20)
    current = make_simulator(playlists=3, items_per_playlist=20, items_shape="item")
    pid = both.playlist_ids()[0]
    full, only = api_get(both, f"/playlists/{pid}").json(), api_get(current, f"/playlists/{pid}").json()
    assert "tracks" in full and "tracks" not in only
    assert all("track" not in i and "item" in i for i in only["items"]["items"])
    assert [i["item"] for i in only["items"]["items"]] == [
        _port_free(i["item"], both, current) for i in full["items"]["items"]
    ]
    page = api_get(current, f"/playlists/{pid}/items", limit=5).json()
    assert all(
        set(i) == {"added_at", "added_by", "is_local", "item", "primary_color", "video_thumbnail"}
        for i in page["items"]
    )
    listed = api_get(current, f"/playlists/{pid}/tracks", limit=5).json()  # the deprecated path: same shape
    assert all("track" not in i for i in listed["items"])


def _port_free(value: Any, a: SimulatedSpotify, b: SimulatedSpotify) -> Any:
    return json.loads(json.dumps(value).replace(str(a.port), str(b.port)))
