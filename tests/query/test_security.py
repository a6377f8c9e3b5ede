"""Hostile SQL and hostile HTTP: `query` and `serve` read the tables and nothing else, write nothing, and
cannot be held forever. Real processes, a real dashboard over real HTTP, a lake made by a real run."""

from __future__ import annotations

import hashlib
import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from spotify_pipeline.errors import ConfigError, QueryError
from spotify_pipeline.query.engine import QueryEngine, QueryResult, format_result
from spotify_pipeline.serve.dashboard import Dashboard
from spotify_pipeline.simulator import Catalog as SimCatalog
from spotify_pipeline.simulator import CatalogConfig, SimulatedSpotify
from spotify_pipeline.tables.catalog import Catalog
from spotify_pipeline.transform.connection import connect

from ..conftest import cli, sim_env

SECRET = "TOP-SECRET-refresh-token-4f1d9a"
# A query that would run for minutes: a trillion-row cross join (constant memory).
FOREVER = "SELECT sum(a.range * b.range) AS s FROM range(1000000) a, range(1000000) b"


class Setup:
    def __init__(self, root: Path, lake: Path, server: SimulatedSpotify) -> None:
        self.root = root
        self.lake = lake
        self.server = server
        self.secret = root / "secret-login.json"
        self.secret.write_text(json.dumps({"refresh_token": SECRET}))
        self.raw_part = next(p for p in sorted(lake.rglob("*.jsonl.gz")))
        self.catalog_db = lake / "catalog.db"
        self.data_file = next(iter(sorted((lake / "warehouse").rglob("*.parquet"))))
        self.outside = root / "written-by-sql"

    def snapshot(self) -> dict[str, str]:
        """Every file under the test's root (the lake and its neighbours) with its content hash."""
        return {
            str(p.relative_to(self.root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(self.root.rglob("*"))
            if p.is_file()
        }


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    root = tmp_path_factory.mktemp("hostile")
    server = SimulatedSpotify(SimCatalog(CatalogConfig(seed=3, playlists=2, items_per_playlist=15))).start()
    try:
        lake = root / "lake"
        ran = cli("run", *[a for p in server.playlist_ids() for a in ("--playlist", p)], env=sim_env(server, lake))
        assert ran.returncode == 0, ran.stderr
        yield Setup(root, lake, server)
    finally:
        server.stop()


def hostile_queries(s: Setup) -> list[str]:
    """Each of these must be refused (or fail) without reading or writing any file outside the tables."""
    out = str(s.outside)
    return [
        f"COPY (SELECT * FROM songs) TO '{out}.csv'",
        f"COPY songs TO '{s.data_file}'",
        f"COPY (SELECT 1 AS x) TO '{s.raw_part}' (FORMAT csv)",
        f"EXPLAIN ANALYZE COPY (SELECT 1 AS x) TO '{out}-explain.csv'",
        f"EXPLAIN ANALYZE COPY (SELECT 1 AS x) TO '{s.catalog_db}' (FORMAT csv)",
        f"explain /* x */ analyze copy (select 1) to '{out}-comment.csv'",
        f"EXPLAIN (FORMAT json) COPY (SELECT 1) TO '{out}-options.csv'",
        f"SELECT content FROM read_text('{s.secret}')",
        f"SELECT * FROM read_csv('{s.secret}', sep='|', header=false)",
        f"SELECT * FROM read_blob('{s.secret}')",
        f"SELECT * FROM read_json_auto('{s.secret}')",
        f"SELECT content FROM read_text('{s.catalog_db}')",
        f"SELECT content FROM read_blob('{s.raw_part}')",
        f"SELECT * FROM glob('{s.root}/*')",
        f"SELECT * FROM read_parquet('{s.root}/**/*.parquet') LIMIT 1",
        f"SELECT * FROM '{s.secret}'",
        f"SELECT * FROM sniff_csv('{s.secret}')",
        f"EXPLAIN ANALYZE SELECT content FROM read_text('{s.secret}')",
        "SELECT getenv('HOME')",
        f"ATTACH '{out}.duckdb' AS evil",
        f"ATTACH '{s.catalog_db}' (TYPE sqlite)",
        "INSTALL httpfs",
        "LOAD httpfs",
        "SET enable_external_access = true",
        "RESET enable_external_access",
        "SET lock_configuration = false",
        "SET allowed_directories = ['/']",
        "SET memory_limit = '100TB'",
        "PRAGMA enable_profiling",
        "CREATE TABLE evil AS SELECT 1 AS x",
        "CREATE OR REPLACE VIEW songs AS SELECT 1 AS x",
        "DROP VIEW songs",
        "INSERT INTO songs SELECT * FROM songs",
        "DELETE FROM songs",
        "CALL pragma_version()",
        f"EXPORT DATABASE '{out}-export'",
        f"SELECT 1; COPY (SELECT 1) TO '{out}-multi.csv'",
        "SELECT 1; SELECT 2",
        f"SELECT * FROM query('COPY (SELECT 1) TO ''{out}-query.csv''')",
        "SELECT * FROM duckdb_secrets()",
    ]


def assert_untouched(s: Setup, before: dict[str, str], output: str) -> None:
    assert s.snapshot() == before
    assert not list(s.root.glob("written-by-sql*"))
    assert SECRET not in output


def test_hostile_queries_are_refused_by_the_engine(setup: Setup) -> None:
    before = setup.snapshot()
    outputs = []
    for in_memory in (False, True):
        with QueryEngine(Catalog(setup.lake), in_memory=in_memory) as engine:
            assert engine.execute("SELECT count(*) FROM songs").rows[0][0] > 0
            for sql in hostile_queries(setup):
                with pytest.raises(QueryError) as refused:
                    result = engine.execute(sql)
                    outputs.append(repr(result.rows))  # only reached if not refused: shows what leaked
                outputs.append(str(refused.value))
            # Still usable, still sandboxed, after every refusal.
            assert engine.execute("SELECT count(*) FROM playlists").rows[0][0] == 2
    assert_untouched(setup, before, "\n".join(outputs))


def test_reads_and_explain_of_a_select_still_work(setup: Setup) -> None:
    with QueryEngine(Catalog(setup.lake)) as engine:
        assert engine.execute("EXPLAIN SELECT count(*) FROM songs").rows
        assert engine.execute("EXPLAIN ANALYZE SELECT count(*) FROM songs").rows
        assert engine.execute("explain /* why */ analyze select 1").rows
        assert engine.execute("WITH s AS (SELECT * FROM songs) SELECT count(*) FROM s;").rows[0][0] > 0
        assert engine.execute("SELECT ? + 1 AS n", [41]).rows == [(42,)]
        assert engine.execute(f"SELECT count(*) FROM read_parquet('{setup.data_file}')").rows[0][0] >= 0


@pytest.mark.parametrize(
    "sql",
    [
        "COPY (SELECT * FROM songs) TO '{out}.csv'",
        "EXPLAIN ANALYZE COPY (SELECT 1 AS x) TO '{raw}' (FORMAT csv)",
        "SELECT content FROM read_text('{secret}')",
        "SELECT * FROM read_csv('{secret}', sep='|', header=false)",
        "ATTACH '{out}.duckdb' AS evil",
        "SET enable_external_access = true",
        "SELECT 1; COPY (SELECT 1) TO '{out}-multi.csv'",
    ],
)
def test_hostile_queries_are_refused_by_the_cli(setup: Setup, sql: str) -> None:
    before = setup.snapshot()
    text = sql.format(out=setup.outside, raw=setup.raw_part, secret=setup.secret)
    result = cli("query", "--format", "json", text, "--lake", str(setup.lake))
    assert result.returncode != 0
    assert result.stderr.startswith("Error: ") and "Traceback" not in result.stderr
    assert_untouched(setup, before, result.stdout + result.stderr)


def test_a_query_that_runs_forever_is_interrupted(setup: Setup) -> None:
    start = time.monotonic()
    result = cli("query", "--timeout", "1", FOREVER, "--lake", str(setup.lake))
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "1 s" in result.stderr and "--timeout" in result.stderr
    assert time.monotonic() - start < 60
    with QueryEngine(Catalog(setup.lake), in_memory=True, timeout=0.5) as engine:
        with pytest.raises(QueryError, match="took longer than"):
            engine.execute(FOREVER)
        assert engine.execute("SELECT count(*) FROM playlists").rows == [(2,)]  # the engine survives it


def test_memory_limit_is_enforced(setup: Setup) -> None:
    with (
        QueryEngine(Catalog(setup.lake), memory_limit="64MB") as engine,
        pytest.raises(QueryError, match=r"(?i)memory"),
    ):
        engine.execute("SELECT list(range || 'padding-padding-padding') AS l FROM range(50000000)")
    with pytest.raises(ConfigError):
        QueryEngine(Catalog(setup.lake), memory_limit="1GB'; SET enable_external_access=true; --")


@pytest.mark.parametrize("value", ["1GB'; COPY (SELECT 1) TO '/tmp/x", "lots", "-1GB", "1 GBs"])
def test_memory_limit_variable_is_validated(value: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPOTIFY_PIPELINE_MEMORY_LIMIT", value)
    with pytest.raises(ConfigError, match="SPOTIFY_PIPELINE_MEMORY_LIMIT"):
        connect()


@pytest.mark.parametrize("value", ["1500MB", "2GB", "1.5GiB", "512 MB", "2gb"])
def test_memory_limit_variable_accepts_duckdb_sizes(value: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPOTIFY_PIPELINE_MEMORY_LIMIT", value)
    connect().close()


# ---- output of every DuckDB type --------------------------------------------------------------------
ODD_TYPES = (
    "SELECT '\\xAA\\x00'::BLOB AS b, INTERVAL 1 DAY + INTERVAL 90 MINUTE AS i, "
    "'12345678-1234-5678-1234-567812345678'::UUID AS u, TIME '12:34:56.5' AS t, 12.50::DECIMAL(6,2) AS d, "
    "DATE '2026-01-02' AS day, 'nan'::DOUBLE AS nan, 'inf'::DOUBLE AS inf, '-inf'::FLOAT AS ninf, "
    "[1.5, 'nan'::DOUBLE] AS l, {'k': '\\x01'::BLOB} AS s, MAP {1: 'a'} AS m, "
    "170141183460469231731687303715884105727::HUGEINT AS h, "
    "TIMESTAMPTZ '2026-01-02 03:04:05+00' AS ts, '101'::BIT AS bits, TIMETZ '12:00:00+01' AS tz"
)


def test_every_type_has_json_and_csv_output() -> None:
    con = connect()
    cursor = con.execute(ODD_TYPES)
    result = QueryResult([d[0] for d in cursor.description or []], cursor.fetchall())
    con.close()
    row = json.loads(format_result(result, "json"))[0]
    assert row["b"] == "qgA="  # base64
    assert row["i"] == "P1DT1H30M"  # ISO 8601 duration
    assert row["u"] == "12345678-1234-5678-1234-567812345678"
    assert row["t"] == "12:34:56.500000" and row["d"] == 12.5 and row["day"] == "2026-01-02"
    assert row["nan"] is None and row["inf"] is None and row["ninf"] is None
    assert row["l"] == [1.5, None] and row["s"] == {"k": "AQ=="} and row["m"] == {"1": "a"}
    assert row["h"] == 170141183460469231731687303715884105727 and row["bits"] == "101"
    assert row["ts"].startswith("2026-01-02T03:04:05")
    csv_text = format_result(result, "csv")
    assert "qgA=" in csv_text and "P1DT1H30M" in csv_text and "nan" not in csv_text.lower().split("\n")[1]
    assert "qgA=" in format_result(result, "table", max_width=200)


def test_cli_json_output_of_odd_types_is_valid_json(setup: Setup) -> None:
    result = cli("query", "--format", "json", ODD_TYPES, "--lake", str(setup.lake))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)[0]["nan"] is None
    assert cli("query", "--format", "csv", ODD_TYPES, "--lake", str(setup.lake)).returncode == 0


# ---- the dashboard over real HTTP ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def dashboard(setup: Setup) -> Iterator[Dashboard]:
    server = Dashboard(setup.lake, "127.0.0.1", 0, query_timeout=1.0).start()
    try:
        yield server
    finally:
        server.stop()


def test_hostile_queries_over_http_are_refused(setup: Setup, dashboard: Dashboard) -> None:
    before = setup.snapshot()
    outputs = []
    for sql in hostile_queries(setup):
        response = httpx.get(f"{dashboard.url}/api/query", params={"sql": sql}, timeout=30)
        outputs.append(response.text)
        assert response.status_code == 400, (sql, response.text)
        assert "Traceback" not in response.text
    assert_untouched(setup, before, "\n".join(outputs))
    ok = httpx.get(f"{dashboard.url}/api/query", params={"sql": "SELECT count(*) AS n FROM playlists"})
    assert ok.json()["rows"] == [{"n": 2}]


def test_a_query_that_runs_forever_over_http_is_interrupted(dashboard: Dashboard) -> None:
    start = time.monotonic()
    response = httpx.get(f"{dashboard.url}/api/query", params={"sql": FOREVER}, timeout=60)
    assert response.status_code == 400 and "took longer than" in response.json()["error"]
    assert time.monotonic() - start < 30
    assert httpx.get(f"{dashboard.url}/api/reports/top_artists").status_code == 200


def test_dashboard_json_of_odd_types(dashboard: Dashboard) -> None:
    response = httpx.get(f"{dashboard.url}/api/query", params={"sql": ODD_TYPES})
    assert response.status_code == 200, response.text
    row = json.loads(response.text)["rows"][0]  # strict JSON: no NaN
    assert row["b"] == "qgA=" and row["nan"] is None and row["u"].startswith("12345678")


def test_dashboard_caps_the_rows_it_returns(dashboard: Dashboard) -> None:
    body = httpx.get(f"{dashboard.url}/api/query", params={"sql": "SELECT range FROM range(100000)"}).json()
    assert len(body["rows"]) == 10000 and body["truncated"] is True


def raw_request(url: str, request: bytes) -> bytes:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(request)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


@pytest.mark.parametrize(
    "host", ["evil.example", "evil.example:{port}", "localhost.evil.example:{port}", "localhost:1", "", "127.0.0.1:1"]
)
def test_dashboard_refuses_foreign_host_headers(dashboard: Dashboard, host: str) -> None:
    port = dashboard.url.rsplit(":", 1)[1]
    header = f"Host: {host.format(port=port)}\r\n" if host else ""
    response = raw_request(dashboard.url, f"GET /api/playlists HTTP/1.1\r\n{header}Connection: close\r\n\r\n".encode())
    status = int(response.split(b" ", 2)[1])
    assert status in (403, 421), response[:200]
    assert b"playlist_id" not in response


@pytest.mark.parametrize("host", ["localhost:{port}", "127.0.0.1:{port}", "[::1]:{port}"])
def test_dashboard_answers_loopback_host_headers(dashboard: Dashboard, host: str) -> None:
    port = dashboard.url.rsplit(":", 1)[1]
    request = f"GET /api/playlists HTTP/1.1\r\nHost: {host.format(port=port)}\r\nConnection: close\r\n\r\n"
    assert raw_request(dashboard.url, request.encode()).startswith(b"HTTP/1.1 200")


def test_dashboard_only_answers_get_and_sets_protective_headers(dashboard: Dashboard) -> None:
    for method in ("POST", "PUT", "DELETE", "PATCH", "OPTIONS"):
        response = httpx.request(method, f"{dashboard.url}/api/query", params={"sql": "SELECT 1"})
        assert response.status_code == 405, method
        assert "access-control-allow-origin" not in response.headers
    cross = httpx.get(
        f"{dashboard.url}/api/playlists", headers={"Origin": "http://evil.example", "Sec-Fetch-Site": "cross-site"}
    )
    assert cross.status_code == 403 and "access-control-allow-origin" not in cross.headers
    for path in ("/", "/api/reports", "/api/playlists", "/api/nope"):
        response = httpx.get(f"{dashboard.url}{path}")
        headers = response.headers
        assert "default-src 'self'" in headers["content-security-policy"], path
        assert "frame-ancestors 'none'" in headers["content-security-policy"]
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["x-frame-options"] == "DENY"
        assert headers["referrer-policy"] == "no-referrer"
        assert "access-control-allow-origin" not in headers


def test_serve_on_all_interfaces_says_what_it_exposes(setup: Setup) -> None:
    import subprocess
    import sys

    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "spotify_pipeline",
            "serve",
            "--host",
            "0.0.0.0",
            "--port",
            "0",
            "--lake",
            str(setup.lake),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None and process.stderr is not None
        line = process.stdout.readline()
        assert "Dashboard on" in line
    finally:
        process.terminate()
        process.wait(timeout=10)
    warning = process.stderr.read()
    assert "every table" in warning and "anyone" in warning


@pytest.mark.parametrize("fmt", ["parquet", "csv", "json"])
def test_export_writes_its_one_file_through_the_sandbox(setup: Setup, tmp_path: Path, fmt: str) -> None:
    out = tmp_path / "out dir" / f"it's.{fmt}"
    result = cli("export", "--table", "songs", "--format", fmt, "--out", str(out), "--lake", str(setup.lake))
    assert result.returncode == 0, result.stderr
    assert out.stat().st_size > 0 and sorted(p.name for p in out.parent.iterdir()) == [out.name]
