"""GraphQL at /graphql, through a real client (gql) and as raw hostile requests: answers match the tables,
paging and filters work, and deep, costly, oversized or writing queries are refused before anything runs."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from gql import Client, gql
from gql.transport.exceptions import TransportQueryError
from gql.transport.requests import RequestsHTTPTransport

from spotify_pipeline.query.engine import QueryEngine, result_rows
from spotify_pipeline.reports import run_report
from spotify_pipeline.serve.dashboard import Dashboard
from spotify_pipeline.serve.graphql_schema import MAX_COST, MAX_DEPTH, MAX_PAGE, MAX_QUERY_CHARS, schema_sdl
from spotify_pipeline.simulator import Catalog as SimCatalog
from spotify_pipeline.simulator import CatalogConfig
from spotify_pipeline.simulator.history import write_export
from spotify_pipeline.tables.catalog import Catalog

from ..conftest import cli
from ..reports.conftest import Lake


@pytest.fixture(scope="module")
def server(lake: Lake) -> Iterator[Dashboard]:
    dashboard = Dashboard(lake.path, "127.0.0.1", 0).start()
    yield dashboard
    dashboard.stop()


@pytest.fixture(scope="module")
def client(server: Dashboard) -> Iterator[Client]:
    transport = RequestsHTTPTransport(url=f"{server.url}/graphql", timeout=30, retries=0)
    with Client(transport=transport, fetch_schema_from_transport=True) as session:
        yield session  # type: ignore[misc]


def run(client: Any, query: str, **variables: Any) -> dict[str, Any]:
    request = gql(query)
    if variables:
        request.variable_values = variables
    return dict(client.execute(request))


def refused(server: Dashboard, query: str, variables: dict[str, Any] | None = None) -> str:
    response = httpx.post(f"{server.url}/graphql", json={"query": query, "variables": variables})
    body = response.json()
    assert response.status_code == 400 and "data" not in body, body
    return " ".join(e["message"] for e in body["errors"])


def test_schema_is_printed_by_a_command() -> None:
    result = cli("graphql-schema")
    assert result.returncode == 0
    assert result.stdout.strip() == schema_sdl().strip()
    assert "type Query" in result.stdout and "type Mutation" not in result.stdout
    assert "listens(" in result.stdout and "report(name: String!" in result.stdout


def test_playlists_are_paged_and_match_the_table(client: Client, lake: Lake) -> None:
    expected = lake.rows("SELECT playlist_id, name FROM playlists ORDER BY name, playlist_id")
    first = run(client, "{ playlists(first: 2) { pageInfo { total offset hasNextPage } nodes { id name url } } }")
    page = first["playlists"]
    assert page["pageInfo"] == {"total": len(expected), "offset": 0, "hasNextPage": True}
    assert [(n["id"], n["name"]) for n in page["nodes"]] == expected[:2]
    assert page["nodes"][0]["url"] == f"https://open.spotify.com/playlist/{expected[0][0]}"
    last = run(
        client,
        "query($o: Int!) { playlists(first: 2, offset: $o) { pageInfo { hasNextPage } nodes { id } } }",
        o=len(expected) - 1,
    )["playlists"]
    assert last["pageInfo"]["hasNextPage"] is False and [n["id"] for n in last["nodes"]] == [expected[-1][0]]
    named = run(client, '{ playlists(nameContains: "V2") { nodes { name } } }')["playlists"]["nodes"]
    assert named and all("v2" in n["name"].lower() for n in named)


def test_a_playlist_with_its_songs_artists_and_album(client: Client, lake: Lake) -> None:
    pid = lake.server.playlist_ids()[1]
    data = run(
        client,
        """query($id: ID!) { playlist(id: $id) { name songs(first: 5) {
             pageInfo { total } nodes { id name url album { name } artists { name } } } } }""",
        id=pid,
    )["playlist"]
    songs = lake.rows(
        "SELECT s.song_id, s.name FROM playlist_songs ps JOIN songs s USING (song_id) "
        f"WHERE ps.playlist_id = '{pid}' ORDER BY ps.position"
    )
    nodes = data["songs"]["nodes"]
    assert data["songs"]["pageInfo"]["total"] == len(songs)
    assert [(n["id"], n["name"]) for n in nodes] == songs[:5]
    assert nodes[0]["url"] == f"https://open.spotify.com/track/{songs[0][0]}"
    artists = lake.rows(
        "SELECT a.name FROM song_artists sa JOIN artists a USING (artist_id) "
        f"WHERE sa.song_id = '{songs[0][0]}' ORDER BY sa.position"
    )
    assert [a["name"] for a in nodes[0]["artists"]] == [a for (a,) in artists]
    assert nodes[0]["album"]["name"]
    assert run(client, '{ playlist(id: "0000000000000000000000") { name } }')["playlist"] is None


def test_filters_on_songs_artists_and_albums(client: Client, lake: Lake) -> None:
    artist = lake.rows("SELECT name FROM artists ORDER BY name LIMIT 1")[0][0]
    songs = run(
        client,
        "query($q: String) { songs(first: 100, search: $q) { nodes { artists { name } album { name } name } } }",
        q=artist,
    )
    assert songs["songs"]["nodes"]
    for song in songs["songs"]["nodes"]:
        text = " ".join([song["name"], song["album"]["name"], *(a["name"] for a in song["artists"])]).lower()
        assert artist.lower() in text
    explicit = run(client, "{ songs(first: 100, explicit: true) { pageInfo { total } nodes { explicit } } }")["songs"]
    assert explicit["pageInfo"]["total"] == lake.rows("SELECT count(*) FROM songs WHERE explicit")[0][0]
    assert all(n["explicit"] for n in explicit["nodes"])
    genre = lake.rows("SELECT g FROM artists, unnest(genres) AS t(g) LIMIT 1")[0][0]
    with_genre = run(client, "query($g: String) { artists(genre: $g) { nodes { genres } } }", g=genre)
    assert all(genre in a["genres"] for a in with_genre["artists"]["nodes"])
    old = run(client, "{ albums(first: 100, releasedTo: 1979) { nodes { releaseDate } } }")["albums"]["nodes"]
    assert old and all(int(a["releaseDate"][:4]) <= 1979 for a in old)
    # The search is a literal: SQL or LIKE syntax in it matches nothing instead of everything.
    for hostile in ("x' OR '1'='1", "%", "_", "\\"):
        page = run(client, "query($q: String) { songs(search: $q) { pageInfo { total } } }", q=hostile)
        assert page["songs"]["pageInfo"]["total"] == 0, hostile


def test_named_reports_and_listens(client: Client, lake: Lake) -> None:
    listing = run(client, "{ reports { name title chart } }")["reports"]
    assert listing[0]["name"] == "top_artists" and listing[0]["chart"] is True
    pid = lake.server.playlist_ids()[2]
    data = run(client, 'query($p: ID) { report(name: "top_artists", playlistId: $p) { title columns rows } }', p=pid)[
        "report"
    ]
    with QueryEngine(Catalog(lake.path)) as engine:
        expected = run_report(engine, "top_artists", {"playlist": pid})
    assert data["columns"] == expected.columns and data["rows"] == result_rows(expected)
    with pytest.raises(TransportQueryError, match="no report named"):
        run(client, '{ report(name: "nope") { title } }')
    listens = run(client, '{ listens(from: "2020-01-01") { pageInfo { total } nodes { endedAt song { name } } } }')
    assert listens["listens"]["pageInfo"]["total"] == lake.rows("SELECT count(*) FROM listens")[0][0]


def test_get_with_query_parameter(server: Dashboard) -> None:
    response = httpx.get(f"{server.url}/graphql", params={"query": "{ playlists(first: 1) { nodes { id } } }"})
    assert response.status_code == 200 and len(response.json()["data"]["playlists"]["nodes"]) == 1
    variables = json.dumps({"n": 1})
    response = httpx.get(
        f"{server.url}/graphql",
        params={"query": "query($n: Int) { songs(first: $n) { nodes { id } } }", "variables": variables},
    )
    assert len(response.json()["data"]["songs"]["nodes"]) == 1
    assert "access-control-allow-origin" not in response.headers


def test_too_deep_queries_are_refused(server: Dashboard) -> None:
    deep = (
        "{ songs(first: 1) { nodes { playlists(first: 1) { nodes { songs(first: 1) { nodes { playlists(first: 1) "
        "{ nodes { songs(first: 1) { nodes { name } } } } } } } } } } }"
    )
    assert f"at most {MAX_DEPTH}" in refused(server, deep)
    # The same depth hidden in fragments counts the same.
    hidden = """{ songs(first: 1) { ...A } }
      fragment A on SongPage { nodes { playlists(first: 1) { ...B } } }
      fragment B on PlaylistPage { nodes { songs(first: 1) { ...C } } }
      fragment C on SongPage { nodes { playlists(first: 1) { nodes { songs(first: 1) { nodes { name } } } } } }"""
    assert f"at most {MAX_DEPTH}" in refused(server, hidden)


def test_costly_queries_are_refused(server: Dashboard) -> None:
    wide = "{ playlists(first: 100) { nodes { songs(first: 100) { nodes { name artists { name } } } } } }"
    assert f"limit of {MAX_COST}" in refused(server, wide)
    through_variables = (
        "query($n: Int) { songs(first: $n) { nodes { playlists(first: $n) { nodes { songs(first: $n) "
        "{ nodes { id } } } } } } }"
    )
    assert f"limit of {MAX_COST}" in refused(server, through_variables, {"n": 100})
    aliases = "{ " + " ".join(f"a{i}: songs(first: 100) {{ nodes {{ id name }} }}" for i in range(30)) + " }"
    assert f"limit of {MAX_COST}" in refused(server, aliases)
    response = httpx.get(f"{server.url}/graphql", params={"query": "{ songs(first: 1000) { nodes { id } } }"})
    assert f"between 1 and {MAX_PAGE}" in response.json()["errors"][0]["message"]


def test_oversized_cyclic_and_writing_queries_are_refused(server: Dashboard) -> None:
    assert "longer than" in refused(server, "{ playlists { nodes { id } } }" + " " * MAX_QUERY_CHARS)
    cycle = "{ songs { ...A } } fragment A on SongPage { ...B } fragment B on SongPage { ...A }"
    assert "Cannot spread fragment" in refused(server, cycle)
    assert "mutation" in refused(server, 'mutation { dropTable(name: "songs") }').lower()
    assert "subscription" in refused(server, "subscription { playlists { nodes { id } } }").lower()
    tokens = "{ " + " ".join(f"a{i}: __typename" for i in range(3000)) + " }"
    assert refused(server, tokens[:MAX_QUERY_CHARS])


def test_post_is_json_only_same_origin_and_graphql_only(server: Dashboard) -> None:
    base = server.url
    form = httpx.post(
        f"{base}/graphql",
        content=b"query=%7Bplaylists%7D",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert form.status_code == 415
    plain = httpx.post(
        f"{base}/graphql", content=b'{"query": "{ reports { name } }"}', headers={"Content-Type": "text/plain"}
    )
    assert plain.status_code == 415  # the one content type a cross-site page can POST without a preflight
    cross = httpx.post(
        f"{base}/graphql", json={"query": "{ reports { name } }"}, headers={"Origin": "http://evil.example"}
    )
    assert cross.status_code == 403 and "access-control-allow-origin" not in cross.headers
    fetch_site = httpx.post(
        f"{base}/graphql", json={"query": "{ reports { name } }"}, headers={"Sec-Fetch-Site": "cross-site"}
    )
    assert fetch_site.status_code == 403
    assert httpx.post(f"{base}/api/query", json={"sql": "SELECT 1"}).status_code == 405
    assert httpx.request("OPTIONS", f"{base}/graphql").status_code == 405  # no preflight is ever granted
    big = httpx.post(
        f"{base}/graphql", content=b"{" + b" " * 70_000 + b"}", headers={"Content-Type": "application/json"}
    )
    assert big.status_code == 413


def test_listens_are_paged_newest_first_and_filtered_by_time(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    export = write_export(
        SimCatalog(CatalogConfig(seed=5, playlists=2, items_per_playlist=20)), "ana", tmp_path / "x.zip", plays=40
    )
    assert cli("import-history", str(export.path), "--lake", str(lake), "--user", "ana").returncode == 0
    with QueryEngine(Catalog(lake)) as engine:
        ended = [row[0] for row in engine.execute("SELECT ended_at FROM listens ORDER BY ended_at DESC").rows]
    assert len(ended) > 10
    dashboard = Dashboard(lake, "127.0.0.1", 0).start()
    try:
        transport = RequestsHTTPTransport(url=f"{dashboard.url}/graphql", timeout=30, retries=0)
        with Client(transport=transport, schema=schema_sdl()) as session:  # validated locally too
            page = run(
                session, "{ listens(first: 5) { pageInfo { total hasNextPage } nodes { endedAt trackName msPlayed } } }"
            )
            assert page["listens"]["pageInfo"] == {"total": len(ended), "hasNextPage": True}
            assert [n["endedAt"] for n in page["listens"]["nodes"]] == [e.isoformat() for e in ended[:5]]
            middle = ended[len(ended) // 2]
            since = run(
                session,
                "query($f: String) { listens(first: 100, from: $f) { nodes { endedAt } } }",
                f=middle.isoformat(),
            )
            assert [n["endedAt"] for n in since["listens"]["nodes"]] == [e.isoformat() for e in ended if e >= middle]
            with pytest.raises(TransportQueryError, match="ISO date"):
                run(session, '{ listens(from: "yesterday") { nodes { endedAt } } }')
    finally:
        dashboard.stop()
