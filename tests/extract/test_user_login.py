"""User login (PKCE) and the user sources, end to end over real HTTP against the simulator."""

from __future__ import annotations

import json
import stat
import urllib.parse
from pathlib import Path

import httpx
import pytest

from spotify_pipeline.errors import AuthError
from spotify_pipeline.extract.user_auth import TokenStore, UserAuth, login, pkce_pair
from spotify_pipeline.query.engine import QueryEngine
from spotify_pipeline.simulator import SimulatedSpotify
from spotify_pipeline.tables.catalog import Catalog

from ..conftest import SimulatorFactory, cli, sim_env


def browser(tamper_state: bool = False) -> object:
    """Plays the user's browser: follows the authorize redirect to the loopback callback."""

    def visit(url: str) -> None:
        consent = httpx.get(url, follow_redirects=False)
        assert consent.status_code == 302, consent.text
        callback = consent.headers["Location"]
        if tamper_state:
            callback = callback.replace("state=", "state=forged")
        assert callback.startswith("http://127.0.0.1:") and "/callback?code=" in callback
        httpx.get(callback)

    return visit


def do_login(server: SimulatedSpotify, folder: Path) -> TokenStore:
    store = TokenStore(folder)
    login(server.accounts_url, server.client_id, store, open_browser=False, show_url=browser(), timeout=20)  # type: ignore[arg-type]
    return store


def test_login_flow_end_to_end(make_simulator: SimulatorFactory, tmp_path: Path) -> None:
    server = make_simulator(playlists=4)
    store = do_login(server, tmp_path)
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    saved = json.loads(store.path.read_text())
    assert saved["refresh_token"] in server._refresh and "access_token" not in saved
    assert "user-library-read" in saved["scope"]
    # The refresh token gives access tokens for the user.
    auth = UserAuth(store, store.load())  # type: ignore[arg-type]
    with httpx.Client() as http:
        header = auth.header(http)
        me = httpx.get(f"{server.api_url}/me", headers={"Authorization": header}).json()
    assert me["id"] == server.login_user


def test_rotated_refresh_token_is_saved_and_revoked_one_asks_to_log_in(
    make_simulator: SimulatorFactory, tmp_path: Path
) -> None:
    server = make_simulator(playlists=3)
    server.rotate_refresh_tokens = True
    store = do_login(server, tmp_path)
    first = json.loads(store.path.read_text())["refresh_token"]
    with httpx.Client() as http:
        UserAuth(store, store.load()).header(http)  # type: ignore[arg-type]
    second = json.loads(store.path.read_text())["refresh_token"]
    assert second != first and server._refresh[first]["revoked"]
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    server.revoke_refresh_tokens()
    with httpx.Client() as http, pytest.raises(AuthError) as info:
        UserAuth(store, store.load()).header(http)  # type: ignore[arg-type]
    assert "spotify-pipeline login" in str(info.value)


def test_wrong_state_or_verifier_is_rejected(make_simulator: SimulatorFactory, tmp_path: Path) -> None:
    server = make_simulator(playlists=3)
    with pytest.raises(AuthError) as info:
        login(
            server.accounts_url,
            server.client_id,
            TokenStore(tmp_path),
            open_browser=False,
            show_url=browser(tamper_state=True),
            timeout=20,
        )  # type: ignore[arg-type]
    assert "state" in str(info.value)
    assert not (tmp_path / "credentials.json").exists()
    # A code exchanged with the wrong code_verifier is refused by the accounts service.
    _, challenge = pkce_pair()
    redirect = "http://127.0.0.1:9/callback"
    consent = httpx.get(
        f"{server.accounts_url}/authorize",
        params={
            "client_id": server.client_id,
            "response_type": "code",
            "redirect_uri": redirect,
            "code_challenge_method": "S256",
            "code_challenge": challenge,
            "state": "s",
        },
        follow_redirects=False,
    )
    code = urllib.parse.parse_qs(urllib.parse.urlsplit(consent.headers["Location"]).query)["code"][0]
    wrong_verifier, _ = pkce_pair()
    refused = httpx.post(
        f"{server.accounts_url}/api/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect,
            "client_id": server.client_id,
            "code_verifier": wrong_verifier,
        },
    )
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_grant"
    localhost = httpx.get(
        f"{server.accounts_url}/authorize",
        params={
            "client_id": server.client_id,
            "response_type": "code",
            "redirect_uri": "http://localhost:8888/callback",
            "code_challenge_method": "S256",
            "code_challenge": challenge,
        },
        follow_redirects=False,
    )
    assert localhost.status_code == 400


def test_development_mode_with_a_user_login(
    make_simulator: SimulatorFactory, tmp_path: Path, isolated_config: Path
) -> None:
    server = make_simulator(playlists=9, items_per_playlist=40, mode="development")
    do_login(server, isolated_config)
    env = sim_env(server, tmp_path / "lake")
    result = cli("run", "--source", "my-playlists", env=env)
    assert result.returncode == 0, result.stderr
    catalog = server.catalog
    user = server.login_user
    mine = catalog.user_playlists(user)
    editable = [i for i in mine if catalog.can_edit(user, i)]
    followed = [i for i in mine if not catalog.can_edit(user, i)]
    assert editable and followed
    assert f"{len(followed)} metadata only" in result.stdout and "owns or collaborates on" in result.stdout
    with QueryEngine(Catalog(tmp_path / "lake")) as engine:
        counts = dict(engine.execute("SELECT playlist_id, count(*) FROM playlist_songs GROUP BY 1").rows)
        listed = {r[0] for r in engine.execute("SELECT playlist_id FROM playlists").rows}
        nulls = engine.execute(
            "SELECT count(*) FILTER (WHERE popularity IS NOT NULL), count(*) FILTER (WHERE isrc IS NOT NULL) FROM songs"
        ).rows[0]
        labels, upcs = engine.execute("SELECT count(label), count(upc) FROM albums").rows[0]
        song_count = engine.execute("SELECT count(*) FROM songs").rows[0][0]
        # Enrichment came one album or artist per response (the batch endpoints refuse): each is still read.
        enriched = {
            name: engine.execute(f"SELECT count(*), count(enriched_at), count(name) FROM {name}").rows[0]
            for name in ("albums", "artists")
        }
        followers = engine.execute(
            "SELECT count(*) FROM artists WHERE followers IS NOT NULL OR popularity IS NOT NULL"
        ).rows[0][0]
    assert listed == {catalog.id_of("playlist", i) for i in mine}
    assert counts == {
        catalog.id_of("playlist", i): catalog.playlist_size(i) for i in editable if catalog.playlist_size(i)
    }
    assert nulls[0] == 0 and labels == 0 and followers == 0  # removed fields stay null, never invented
    assert nulls[1] == song_count > 0 and upcs == enriched["albums"][1]  # ISRC and UPC stay (reverted March 2026)
    for route in ("artist", "album"):
        assert set(server.stats.ids_by_route[route].values()) == {1}, f"each {route} fetched once"
        fetched = len(server.stats.ids_by_route[route])
        assert enriched[route + "s"] == (fetched, fetched, fetched), route
    assert server.stats.by_route["artists"] == 1 and server.stats.by_route.get("albums", 0) == 0  # one refusal
    who = cli("whoami", env=env)
    assert who.returncode == 0 and f"({user})" in who.stdout and "access mode: development" in who.stdout


def test_recently_played_three_times_gives_every_play_once(
    make_simulator: SimulatorFactory, tmp_path: Path, isolated_config: Path
) -> None:
    server = make_simulator(playlists=3, items_per_playlist=20)
    do_login(server, isolated_config)
    env = sim_env(server, tmp_path / "lake")
    for new_plays in (0, 20, 35):
        server.add_plays(server.login_user, new_plays)
        result = cli("run", "--source", "recently-played", env=env)
        assert result.returncode == 0, result.stderr
    total = server.plays_of(server.login_user)
    expected = {server.catalog.play(server.login_user, n)[1] for n in range(total)}
    with QueryEngine(Catalog(tmp_path / "lake")) as engine:
        got = [r[0] for r in engine.execute("SELECT played_at FROM plays").rows]
        contexts = engine.execute("SELECT count(*) FROM plays WHERE context_type = 'playlist'").rows[0][0]
    assert len(got) == len(set(got)) == total == 85
    assert {g.replace(microsecond=0) for g in got} == {e.replace(microsecond=0) for e in expected}
    assert contexts > 0


def test_liked_and_top_fill_their_tables_and_pass_the_checks(
    make_simulator: SimulatorFactory, tmp_path: Path, isolated_config: Path
) -> None:
    server = make_simulator(playlists=3, items_per_playlist=20)
    do_login(server, isolated_config)
    env = sim_env(server, tmp_path / "lake")
    result = cli("run", "--source", "liked", "--source", "top", env=env)
    assert result.returncode == 0, result.stderr
    catalog = server.catalog
    liked = {catalog.id_of("track", t) for t, _ in catalog.saved_tracks(server.login_user)}
    with QueryEngine(Catalog(tmp_path / "lake")) as engine:
        saved = {r[0] for r in engine.execute("SELECT song_id FROM saved_songs").rows}
        top = engine.execute("SELECT time_range, item_type, count(*) FROM user_top GROUP BY 1, 2 ORDER BY 1, 2").rows
    assert saved == liked
    expected_top = [
        (r, t, len(catalog.top(server.login_user, f"{t}s", r)))
        for r in ("long_term", "medium_term", "short_term")
        for t in ("artist", "track")
    ]
    assert top == expected_top and all(n > 0 for _, _, n in top)
    check = cli("check", env=env)
    assert check.returncode == 0, check.stdout


def test_user_sources_without_a_login_say_what_to_do(simulator: SimulatedSpotify, tmp_path: Path) -> None:
    result = cli("run", "--source", "liked", env=sim_env(simulator, tmp_path))
    assert result.returncode == 2 and "run `spotify-pipeline login` first" in result.stderr
    assert simulator.stats.api_requests == 0


EXPIRED_LOGIN = "your Spotify login has expired or was revoked; run `spotify-pipeline login` again"


def test_a_login_past_its_lifetime_asks_to_log_in_again_without_retrying(
    make_simulator: SimulatorFactory, tmp_path: Path
) -> None:
    # Spotify's refresh tokens live 6 months from the login (refreshing does not extend them); past that the
    # token endpoint answers 400 invalid_grant, which must not be retried.
    server = make_simulator(playlists=3)
    store = do_login(server, tmp_path)
    with httpx.Client() as http:
        UserAuth(store, store.load()).header(http)  # type: ignore[arg-type]
    server.refresh_token_max_age = 0.0  # the login is older than the simulator's refresh-token lifetime
    answer = httpx.post(
        f"{server.accounts_url}/api/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": json.loads(store.path.read_text())["refresh_token"],
            "client_id": server.client_id,
        },
    )
    assert answer.status_code == 400
    assert answer.json() == {"error": "invalid_grant", "error_description": "Refresh token expired"}
    before = server.stats.by_route["token"]
    with httpx.Client() as http, pytest.raises(AuthError) as info:
        UserAuth(store, store.load()).header(http)  # type: ignore[arg-type]
    assert str(info.value) == EXPIRED_LOGIN
    assert server.stats.by_route["token"] == before + 1, "invalid_grant is not retried"


def test_an_expired_login_stops_a_run_with_one_line(
    make_simulator: SimulatorFactory, tmp_path: Path, isolated_config: Path
) -> None:
    server = make_simulator(playlists=3, items_per_playlist=10)
    do_login(server, isolated_config)
    assert httpx.post(f"{server.base_url}/_admin/expire-login").status_code == 200
    before, api = server.stats.by_route["token"], server.stats.api_requests
    result = cli("run", "--source", "liked", env=sim_env(server, tmp_path / "lake"))
    assert result.returncode == 4
    assert result.stderr.strip() == f"Error: {EXPIRED_LOGIN}"
    assert server.stats.by_route["token"] == before + 1 and server.stats.api_requests == api
    # A new login starts a new lifetime.
    do_login(server, isolated_config)
    assert cli("run", "--source", "liked", env=sim_env(server, tmp_path / "lake")).returncode == 0


@pytest.mark.parametrize("rotate", [False, True])
def test_refresh_keeps_or_rotates_the_saved_refresh_token(
    make_simulator: SimulatorFactory, tmp_path: Path, rotate: bool
) -> None:
    server = make_simulator(playlists=3)
    server.rotate_refresh_tokens = rotate
    store = do_login(server, tmp_path)
    first = json.loads(store.path.read_text())
    for _ in range(2):  # two refreshes: each must work with whatever was saved
        with httpx.Client() as http:
            UserAuth(store, store.load()).header(http)  # type: ignore[arg-type]
    saved = json.loads(store.path.read_text())
    if rotate:
        assert saved["refresh_token"] != first["refresh_token"] and server._refresh[first["refresh_token"]]["revoked"]
        assert not server._refresh[saved["refresh_token"]]["revoked"]
    else:  # the answer carried no refresh_token: the saved one is kept, untouched
        assert saved == first
        assert not server._refresh[first["refresh_token"]]["revoked"]
