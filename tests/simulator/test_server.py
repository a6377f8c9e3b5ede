"""The simulator over real HTTP: auth, paging, fields, quirks, faults, statistics, snapshot changes."""

from __future__ import annotations

import time

import httpx
import pytest

from spotify_pipeline.simulator import Fault, FaultPlan, SimulatedSpotify
from spotify_pipeline.simulator.fields import filter_fields

from ..conftest import SimulatorFactory, api_get, client_token


def test_token_with_basic_auth_and_with_form_fields(simulator: SimulatedSpotify) -> None:
    basic = httpx.post(
        f"{simulator.accounts_url}/api/token",
        data={"grant_type": "client_credentials"},
        auth=(simulator.client_id, simulator.client_secret),
    )
    form = httpx.post(
        f"{simulator.accounts_url}/api/token",
        data={
            "grant_type": "client_credentials",
            "client_id": simulator.client_id,
            "client_secret": simulator.client_secret,
        },
    )
    for response in (basic, form):
        assert response.status_code == 200
        assert response.json()["token_type"] == "Bearer"
        assert response.json()["expires_in"] == 3600


def test_wrong_credentials_get_invalid_client(simulator: SimulatedSpotify) -> None:
    response = httpx.post(
        f"{simulator.accounts_url}/api/token",
        data={"grant_type": "client_credentials"},
        auth=(simulator.client_id, "wrong"),
    )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_client"


def test_expired_token_gets_the_real_message(make_simulator: SimulatorFactory) -> None:
    server = make_simulator(token_ttl=0.2)
    token = client_token(server)
    assert api_get(server, f"/playlists/{server.playlist_ids()[0]}", token).status_code == 200
    time.sleep(0.3)
    expired = api_get(server, f"/playlists/{server.playlist_ids()[0]}", token)
    assert expired.status_code == 401
    assert expired.json()["error"]["message"] == "The access token expired"


def test_paging_walks_every_item_once(simulator: SimulatedSpotify) -> None:
    token = client_token(simulator)
    large = simulator.playlist_ids()[1]
    url: str | None = f"{simulator.api_url}/playlists/{large}/items?limit=50"
    positions = 0
    uris: list[str | None] = []
    while url:
        page = api_get(simulator, url, token).json()
        positions += len(page["items"])
        uris += [(i["item"] or {}).get("uri") for i in page["items"]]
        url = page["next"]
    assert positions == 260 == simulator.catalog.playlist_size(1)


def test_limit_and_offset_are_validated(simulator: SimulatedSpotify) -> None:
    pid = simulator.playlist_ids()[0]
    for params in ({"limit": 0}, {"limit": 101}, {"limit": "x"}, {"offset": -1}):
        response = api_get(simulator, f"/playlists/{pid}/items", **params)
        assert response.status_code == 400, params
        assert response.json()["error"]["status"] == 400


def test_fields_filter(simulator: SimulatedSpotify) -> None:
    pid = simulator.playlist_ids()[1]
    body = api_get(simulator, f"/playlists/{pid}", fields="snapshot_id").json()
    assert body == {"snapshot_id": simulator.catalog.snapshot_id(1)}
    body = api_get(simulator, f"/playlists/{pid}", fields="name,owner(id),items.total").json()
    assert body == {
        "name": simulator.catalog.playlist_name(1),
        "owner": {"id": simulator.catalog.owner(1)},
        "items": {"total": 260},
    }
    page = api_get(simulator, f"/playlists/{pid}/items", fields="items(added_at,item(name,album(!images)))").json()
    first = page["items"][0]
    assert set(first) <= {"added_at", "item"}
    assert "images" not in (first["item"] or {}).get("album", {})
    assert filter_fields({"a": 1, "b": {"c": 2, "d": 3}}, "b.c") == {"b": {"c": 2}}
    assert api_get(simulator, f"/playlists/{pid}", fields="items((").status_code == 400


def test_every_catalog_has_every_quirk(make_simulator: SimulatorFactory) -> None:
    server = make_simulator(playlists=3, items_per_playlist=12, quirk_rate=0.0)
    token = client_token(server)
    items = api_get(server, f"/playlists/{server.playlist_ids()[0]}", token).json()["items"]["items"]
    assert any(i["item"] is None for i in items)
    local = next(i for i in items if i["is_local"])
    assert local["item"]["id"] is None and local["item"]["uri"].startswith("spotify:local:")
    assert any((i["item"] or {}).get("type") == "episode" for i in items)
    track_ids = [i["item"]["id"] for i in items if i["item"] and i["item"]["type"] == "track" and i["item"]["id"]]
    assert len(track_ids) > len(set(track_ids)), "a duplicate track"
    assert any(i["added_at"] is None and i["added_by"] is None for i in items)
    assert any(len(i["item"]["artists"]) > 1 for i in items if i["item"] and i["item"]["type"] == "track")
    tracks = [i["item"] for i in items if i["item"] and i["item"]["type"] == "track" and i["item"]["id"]]
    precisions = {track["album"]["release_date"] for track in tracks}
    assert "0000" in precisions
    assert {len(d.split("-")) for d in precisions if d and d != "0000"} == {1, 2, 3}
    assert all(i["item"] == i["track"] for i in items), "item and its deprecated alias track agree"
    empty = api_get(server, f"/playlists/{server.playlist_ids()[2]}", token).json()
    assert empty["items"]["total"] == 0
    names = [server.catalog.playlist_name(i) for i in range(40)] + [
        server.catalog._name("track", i) for i in range(200)
    ]
    assert any("\n" in n for n in names) and any('"' in n for n in names) and any("," in n for n in names)


def test_catalog_is_deterministic(make_simulator: SimulatorFactory) -> None:
    a = make_simulator(seed=3, playlists=3)
    b = make_simulator(seed=3, playlists=3)
    pid = a.playlist_ids()[0]
    strip = lambda body: str(body).replace(str(a.port), "PORT").replace(str(b.port), "PORT")  # noqa: E731
    assert strip(api_get(a, f"/playlists/{pid}").json()) == strip(api_get(b, f"/playlists/{pid}").json())


@pytest.mark.parametrize("kind,status", [("429", 429), ("quota", 429), ("500", 500), ("502", 502), ("503", 503)])
def test_scripted_status_faults(simulator: SimulatedSpotify, kind: str, status: int) -> None:
    token = client_token(simulator)
    simulator.faults.add(Fault(kind, count=2, retry_after=7))  # type: ignore[arg-type]
    pid = simulator.playlist_ids()[0]
    responses = [api_get(simulator, f"/playlists/{pid}", token) for _ in range(3)]
    assert [r.status_code for r in responses] == [status, status, 200]
    if status == 429:
        assert responses[0].headers["Retry-After"] == "7"
        assert (responses[0].json()["error"].get("reason") == "QUOTA_EXCEEDED") == (kind == "quota")
    assert simulator.stats.faults[kind] == 2


@pytest.mark.parametrize("kind", ["drop", "truncate"])
def test_connection_faults(simulator: SimulatedSpotify, kind: str) -> None:
    token = client_token(simulator)
    simulator.faults.add(Fault(kind))  # type: ignore[arg-type]
    with pytest.raises(httpx.TransportError):
        api_get(simulator, f"/playlists/{simulator.playlist_ids()[0]}", token)
    assert api_get(simulator, f"/playlists/{simulator.playlist_ids()[0]}", token).status_code == 200


def test_malformed_body_fault(simulator: SimulatedSpotify) -> None:
    simulator.faults.add(Fault("malformed"))
    response = api_get(simulator, f"/playlists/{simulator.playlist_ids()[0]}")
    with pytest.raises(ValueError):
        response.json()


def test_latency_and_slow_faults(make_simulator: SimulatorFactory) -> None:
    server = make_simulator(faults=FaultPlan(latency_ms=150))
    token = client_token(server)
    started = time.monotonic()
    api_get(server, f"/playlists/{server.playlist_ids()[0]}", token)
    assert time.monotonic() - started >= 0.15
    server.faults.latency_ms = 0
    server.faults.add(Fault("slow", delay_ms=200))
    started = time.monotonic()
    assert api_get(server, f"/playlists/{server.playlist_ids()[0]}", token).status_code == 200
    assert time.monotonic() - started >= 0.2


def test_rolling_window_rate_limit(make_simulator: SimulatorFactory) -> None:
    server = make_simulator(faults=FaultPlan(rate_limit=3, rate_window_s=1.0))
    token = client_token(server)
    pid = server.playlist_ids()[0]
    statuses = [api_get(server, f"/playlists/{pid}", token).status_code for _ in range(5)]
    assert statuses == [200, 200, 200, 429, 429]
    time.sleep(1.05)
    assert api_get(server, f"/playlists/{pid}", token).status_code == 200


def test_random_errors_and_drops_follow_their_rates(make_simulator: SimulatorFactory) -> None:
    server = make_simulator(faults=FaultPlan(error_rate=0.5, seed=1))
    token = client_token(server)
    statuses = [api_get(server, f"/playlists/{server.playlist_ids()[0]}", token).status_code for _ in range(40)]
    assert 8 <= sum(s >= 500 for s in statuses) <= 32
    server.faults.error_rate, server.faults.drop_rate = 0.0, 1.0
    with pytest.raises(httpx.TransportError):
        api_get(server, f"/playlists/{server.playlist_ids()[0]}", token)


def test_admin_endpoints(simulator: SimulatedSpotify) -> None:
    token = client_token(simulator)
    pid = simulator.playlist_ids()[0]
    before = api_get(simulator, f"/playlists/{pid}", token).json()
    httpx.post(f"{simulator.base_url}/_admin/faults", json={"faults": [{"kind": "503", "count": 1}]})
    assert api_get(simulator, f"/playlists/{pid}", token).status_code == 503
    assert httpx.post(f"{simulator.base_url}/_admin/mutate", json={"playlists": [0]}).status_code == 200
    after = api_get(simulator, f"/playlists/{pid}", token).json()
    assert after["snapshot_id"] != before["snapshot_id"]
    assert after["name"] != before["name"]
    uris = lambda body: [(i["item"] or {}).get("uri") for i in body["items"]["items"]]  # noqa: E731
    assert uris(after) != uris(before) and after["items"]["total"] == before["items"]["total"] + 2
    httpx.post(f"{simulator.base_url}/_admin/expire-tokens")
    assert api_get(simulator, f"/playlists/{pid}", token).status_code == 401
    stats = httpx.get(f"{simulator.base_url}/_admin/stats").json()
    assert stats["by_route"]["playlist"] == 4 and stats["faults"] == {"503": 1}


def test_legacy_server_has_only_tracks(make_simulator: SimulatorFactory) -> None:
    server = make_simulator(legacy_items=True)
    token = client_token(server)
    pid = server.playlist_ids()[0]
    body = api_get(server, f"/playlists/{pid}", token).json()
    assert "items" not in body and "item" not in body["tracks"]["items"][0]
    assert api_get(server, f"/playlists/{pid}/items", token).status_code == 404
    assert api_get(server, f"/playlists/{pid}/tracks", token).status_code == 200


def test_batch_limits(simulator: SimulatedSpotify) -> None:
    ids = [simulator.catalog.id_of("album", i) for i in range(21)]
    assert api_get(simulator, "/albums", ids=",".join(ids)).status_code == 400
    body = api_get(simulator, "/albums", ids=",".join([*ids[:2], "A" * 22])).json()
    assert body["albums"][2] is None and body["albums"][0]["id"] == ids[0]
