"""`spotify-pipeline serve`: a local, read-only web dashboard and JSON API over the named reports.

Standard library HTTP server, one thread per connection; every query goes through one sandboxed
`QueryEngine` (see `query/engine.py`: one SELECT, no file access beyond the tables, loaded into memory, a time
and memory limit) under a lock, reopened when the lake's catalog changes. The engine lives in a worker
process replaced every `recycle_after` reopens (`engine_process.py`), so months of table changes do not
grow this process or the worker.

HTTP hardening, as a web page the user visits is hostile too:
- the Host header must name this server (loopback names, the `--host` given, `--allow-host` names, and on
  a wildcard address any IP literal) and the port: a DNS-rebinding page's Host names its own domain;
- a request a browser marks as cross-site (`Sec-Fetch-Site`) or with a foreign `Origin` is refused, so a
  page elsewhere cannot fire a query blind; no CORS header is ever sent;
- only GET and HEAD (405 otherwise); every answer carries a restrictive Content-Security-Policy,
  `X-Frame-Options: DENY`, `nosniff`, `Referrer-Policy: no-referrer` and `Cache-Control: no-store`;
- `/api/query` rows are capped (`MAX_QUERY_ROWS`, `truncated` says so).

A little over the ~400 lines we aim for: the server and its one handler class (every route) share the engine,
its lock and the refusal rules; the OpenAPI document, Host/CSP rules and GraphQL already live beside it.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from typing import Any

from ..errors import PipelineError
from ..ids import parse_playlist_ref
from ..query.consistent import TablesChanging, change_stamp
from ..query.engine import QueryResult, plain_value, result_rows
from ..reports import LISTENING_ORDER, all_reports, run_report
from ..reports.charts import TIME_FIELDS, chart_spec, not_enough_data, render_svg
from ..reports.charts import title as column_title
from ..reports.html import ordered_reports, summary
from ..reports.params import LISTENING_PARAMS
from .engine_process import EngineDied, EngineProcess, EngineSettings, EngineStats
from .graphql_api import run_graphql
from .hardening import LOOPBACK_NAMES, WILDCARD_ADDRESSES, content_security_policy, is_ip, split_host
from .openapi import OPENAPI, SONG_SORTS

log = logging.getLogger(__name__)

SONGS_SQL = """
WITH items AS (
    SELECT ps.position, ps.song_id, ps.item_type, ps.item_uri, coalesce(s.name, ps.item_name) AS name,
           (SELECT string_agg(a.name, ', ' ORDER BY sa.position) FROM song_artists sa
            JOIN artists a ON a.artist_id = sa.artist_id WHERE sa.song_id = ps.song_id) AS artists,
           al.name AS album, s.duration_ms, s.popularity, s.explicit, ps.added_at
    FROM playlist_songs ps
    LEFT JOIN songs s ON s.song_id = ps.song_id
    LEFT JOIN albums al ON al.album_id = s.album_id
    WHERE ps.playlist_id = $playlist
)
SELECT *, count(*) OVER () AS total FROM items
WHERE $pattern IS NULL OR name ILIKE $pattern ESCAPE '\\' OR artists ILIKE $pattern ESCAPE '\\'
   OR album ILIKE $pattern ESCAPE '\\'
ORDER BY {order} NULLS LAST, position
LIMIT $limit OFFSET $offset
"""
MAX_SONG_PAGE = 200
MAX_GRAPHQL_BODY = 64 * 1024
STATIC = {
    "app.js": "web/app.js",
    "charts.js": "web/charts.js",
    **{
        f"vendor/{n}": f"web/vendor/{n}"
        for n in ("vega.min.js", "vega-lite.min.js", "vega-embed.min.js", "vega-interpreter.js")
    },
}


def result_json(result: QueryResult, **extra: Any) -> dict[str, Any]:
    return {**extra, "columns": result.columns, "rows": result_rows(result)}


MAX_QUERY_ROWS = 10_000
DEFAULT_QUERY_TIMEOUT_S = 30.0
DEFAULT_MEMORY_LIMIT = "2GB"
DEFAULT_RECYCLE_AFTER = 10  # reopens per worker: ~1-10 MiB kept at most (0.1-1 MiB each), ~1 s to replace it


class Dashboard:
    def __init__(
        self,
        lake_root: Path,
        host: str = "127.0.0.1",
        port: int = 8000,
        *,
        query_timeout: float | None = DEFAULT_QUERY_TIMEOUT_S,
        memory_limit: str | None = DEFAULT_MEMORY_LIMIT,
        allowed_hosts: tuple[str, ...] = (),
        recycle_after: int = DEFAULT_RECYCLE_AFTER,
    ) -> None:
        if recycle_after < 1:
            raise ValueError("recycle_after must be at least 1")
        self.lake_root = lake_root
        self.recycle_after = recycle_after
        self.host = host
        self.query_timeout = query_timeout
        self.memory_limit = memory_limit
        self.allowed_hosts = LOOPBACK_NAMES | {h.strip().strip("[]").lower() for h in allowed_hosts}
        if host not in WILDCARD_ADDRESSES:
            self.allowed_hosts |= {host.strip("[]").lower()}
        self._engine: EngineProcess | None = None
        self._stamp: tuple[object, ...] | None = None
        self._lock = threading.Lock()
        self.httpd = ThreadingHTTPServer((host, port), _Handler)
        self.httpd.daemon_threads = True
        self.httpd.dashboard = self  # type: ignore[attr-defined]
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self.httpd.server_address[1])

    @property
    def exposed(self) -> bool:
        """Bound to an address other machines may reach (not loopback)."""
        name = self.host.strip("[]").lower()
        return name not in LOOPBACK_NAMES and not (is_ip(name) and ipaddress.ip_address(name).is_loopback)

    def host_allowed(self, value: str | None) -> bool:
        """The request's Host header names this server: an allowed name (or, on a wildcard address, an IP
        literal: a DNS-rebinding page cannot make a browser send one) and this server's port."""
        if not value:
            return False
        name, port = split_host(value)
        if (port if port is not None else 80) != self.port:
            return False
        return name in self.allowed_hosts or (self.host in WILDCARD_ADDRESSES and is_ip(name))

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host.decode() if isinstance(host, bytes) else host}:{port}"

    def query(self, fn: Any) -> Any:
        """Run `fn(engine)` under the lock, reopening the engine when the catalog has changed (in a new worker
        after `recycle_after` reopens, or when the worker died). A worker can die after it was seen alive and
        before it answered (the OOM killer picks the largest process, not the query's cause): a read is then
        asked once more, of a new worker; a second death is the answer (a 503)."""
        with self._lock:
            try:
                return fn(self._current_engine())
            except EngineDied as died:
                log.warning("%s; asking a new one", died)
                return fn(self._current_engine())

    def engine_stats(self) -> EngineStats:
        """The worker's pid, reopens and live DuckDB connections (tests and benchmarks count them)."""
        with self._lock:
            return self._current_engine().stats()

    def _current_engine(self) -> EngineProcess:
        # A run commits one table at a time: the worker opens (or keeps) the latest snapshots that are no
        # half of a publish (query/consistent.py), whatever the lake's lock says. The stamp is read first, so
        # a change after it is seen by the next query.
        stamp = change_stamp(self.lake_root)
        engine = self._engine
        if engine is not None and engine.alive and engine.reopens and stamp == self._stamp:
            return engine
        if engine is None or not engine.alive or engine.reopens >= self.recycle_after:
            if engine is not None:
                self._engine = None
                engine.close()
            engine = EngineProcess(EngineSettings(self.lake_root, self.query_timeout, self.memory_limit))
        try:
            engine.open()
        except BaseException:
            engine.close()
            raise
        self._engine, self._stamp = engine, stamp
        return engine

    def _start_worker(self) -> None:
        """Start the engine's worker now, so its imports overlap with the first request's arrival."""
        with self._lock:
            if self._engine is None:
                self._engine = EngineProcess(EngineSettings(self.lake_root, self.query_timeout, self.memory_limit))

    def start(self) -> Dashboard:
        self._start_worker()
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self._start_worker()
        self.httpd.serve_forever()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        with self._lock:  # a request still running (a page closed mid-load) finishes its query first
            if self._engine is not None:
                self._engine.close()
                self._engine = None


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        return

    @property
    def dashboard(self) -> Dashboard:
        return self.server.dashboard  # type: ignore[attr-defined, no-any-return]

    def end_headers(self) -> None:
        """Every answer, errors of http.server's own included, carries the protective headers."""
        self.send_header("Content-Security-Policy", _CSP)
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("X-Frame-Options", "DENY")
        self.send_header("Referrer-Policy", "no-referrer")
        self.send_header("Cross-Origin-Resource-Policy", "same-origin")
        super().end_headers()

    def _send(self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        body = json.dumps(payload, ensure_ascii=False, allow_nan=False).encode()
        self._send(status, body, "application/json; charset=utf-8", headers)

    def _refusal(self) -> tuple[int, str] | None:
        """Why this request is not answered: a foreign Host (DNS rebinding) or a cross-site caller."""
        if not self.dashboard.host_allowed(self.headers.get("Host")):
            return 421, "this server does not answer for that Host header (see `serve --allow-host`)"
        site = (self.headers.get("Sec-Fetch-Site") or "").lower()
        origin = self.headers.get("Origin")
        if site in ("cross-site", "same-site") or (
            origin is not None and not self.dashboard.host_allowed(urllib.parse.urlsplit(origin).netloc)
        ):
            return 403, "cross-origin requests are refused"
        return None

    def _refuse(self) -> None:
        refusal = self._refusal()
        if refusal:
            self._json(refusal[0], {"error": refusal[1]})
            return
        self._send(405, b'{"error": "read-only: only GET is allowed"}', "application/json", {"Allow": "GET, HEAD"})

    do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_TRACE = do_CONNECT = _refuse

    def do_POST(self) -> None:
        """Only `/graphql` answers a POST, and only with a JSON body: a page elsewhere cannot send one
        without a CORS preflight (OPTIONS), which is refused, so a cross-site form cannot reach it; the same
        Host, Origin and Sec-Fetch-Site checks apply, and the schema has no mutations anyway."""
        path = urllib.parse.urlsplit(self.path).path
        if path != "/graphql" or self._refusal():
            self._refuse()
            return
        content_type = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if content_type != "application/json":
            self._json(415, {"error": "POST /graphql takes Content-Type: application/json"})
            return
        try:
            length = int(self.headers.get("Content-Length") or "-1")
        except ValueError:
            length = -1
        if not 0 <= length <= MAX_GRAPHQL_BODY:
            self._json(413, {"error": f"the body must have a Content-Length of at most {MAX_GRAPHQL_BODY} bytes"})
            self.close_connection = True
            return
        try:
            body = json.loads(self.rfile.read(length) or b"null")
        except (ValueError, UnicodeDecodeError):
            self._json(400, {"errors": [{"message": "the body is not JSON"}]})
            return
        if not isinstance(body, dict):
            self._json(400, {"errors": [{"message": "the body must be a JSON object with `query`"}]})
            return
        self._graphql(body.get("query"), body.get("variables"), body.get("operationName"))

    def _graphql(self, query: Any, variables: Any, operation: Any) -> None:
        answer = run_graphql(self.dashboard.query, query, variables, operation if isinstance(operation, str) else None)
        self._json(200 if "data" in answer else 400, answer)

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        refusal = self._refusal()
        if refusal:
            self._json(refusal[0], {"error": refusal[1]})
            return
        parsed = urllib.parse.urlsplit(self.path)
        query = {k: v[-1] for k, v in urllib.parse.parse_qs(parsed.query).items()}
        path = parsed.path
        try:
            if path in ("/", "/index.html"):
                self._send(200, _page(), "text/html; charset=utf-8")
            elif path.startswith("/static/") and path.removeprefix("/static/") in STATIC:
                body = resources.files("spotify_pipeline").joinpath(STATIC[path.removeprefix("/static/")]).read_bytes()
                self._send(200, body, "text/javascript; charset=utf-8")
            elif path == "/graphql":
                try:
                    variables = json.loads(query["variables"]) if query.get("variables") else None
                except ValueError:
                    self._json(400, {"errors": [{"message": "`variables` must be JSON"}]})
                    return
                self._graphql(query.get("query"), variables, query.get("operationName"))
            elif path == "/api/summary":
                playlist = parse_playlist_ref(query["playlist"]) if query.get("playlist") else None
                info = self.dashboard.query(lambda e: summary(e, playlist))
                last = info["last_run"]
                info["last_run"] = (
                    None if not last else {"run_id": last[0], "status": last[1], "finished_at": plain_value(last[2])}
                )
                info["fresh"] = plain_value(info["fresh"])
                self._json(200, info)
            elif path.startswith("/api/charts/") and path.endswith(".json"):
                name = path.removeprefix("/api/charts/").removesuffix(".json")
                self._report(name)
                result = self.dashboard.query(lambda e: run_report(e, name, report_params(name, query)))
                spec = chart_spec(name, result)
                if spec is None:
                    self._json(404, {"error": f"report {name} has no chart; use /api/reports/{name}"})
                else:
                    self._json(200, {"spec": spec, "note": not_enough_data(name, result)})
            elif path.startswith("/api/playlists/") and path.endswith("/songs"):
                self._songs(path.removeprefix("/api/playlists/").removesuffix("/songs"), query)
            elif path == "/openapi.json":
                self._json(200, OPENAPI)
            elif path == "/api/reports":
                reports = all_reports()
                self._json(
                    200,
                    [
                        {
                            "name": n,
                            "title": reports[n].title,
                            "description": reports[n].description,
                            "chart": chart_spec(n, QueryResult([], [])) is not None,
                            "time_field": TIME_FIELDS.get(n),
                        }
                        for n in ordered_reports(reports)
                    ],
                )
            elif path == "/api/playlists":
                result = self.dashboard.query(
                    lambda e: e.execute(
                        "SELECT p.playlist_id, p.name, count(ps.position) AS items FROM playlists p "
                        "LEFT JOIN playlist_songs ps USING (playlist_id) GROUP BY p.playlist_id, p.name ORDER BY p.name"
                    )
                )
                self._json(200, result_json(result)["rows"])
            elif path.startswith("/api/reports/"):
                name = path.removeprefix("/api/reports/")
                report = self._report(name)
                result = self.dashboard.query(lambda e: run_report(e, name, report_params(name, query)))
                titles = {c: column_title(c) for c in result.columns}
                self._json(200, result_json(result, name=name, title=report.title, titles=titles))
            elif path.startswith("/api/charts/") and path.endswith(".svg"):
                name = path.removeprefix("/api/charts/").removesuffix(".svg")
                self._report(name)
                result = self.dashboard.query(lambda e: run_report(e, name, report_params(name, query)))
                spec = chart_spec(name, result)
                if spec is None:
                    self._json(404, {"error": f"report {name} has no chart; use /api/reports/{name}"})
                elif not result.rows:
                    self._send(204, b"", "image/svg+xml")
                else:
                    self._send(200, render_svg(spec).encode(), "image/svg+xml")
            elif path == "/api/query":
                if not query.get("sql"):
                    self._json(400, {"error": "pass the SQL as ?sql="})
                    return
                result = self.dashboard.query(lambda e: e.execute(query["sql"], max_rows=MAX_QUERY_ROWS))
                self._json(200, result_json(result, truncated=result.truncated))
            else:
                self._json(404, {"error": f"not found: {path}"})
        except _NotFound as exc:
            self._json(404, {"error": str(exc)})
        except TablesChanging as exc:  # commits kept coming while the engine opened: a moment later they are in
            self._json(503, {"error": str(exc)}, {"Retry-After": "1"})
        except EngineDied as exc:  # twice in a row: not this request's fault, and worth another try
            self._json(503, {"error": str(exc)}, {"Retry-After": "5"})
        except PipelineError as exc:
            self._json(400, {"error": str(exc)})
        except ConnectionError:  # the client left: nobody to answer
            raise
        except Exception:  # a bug, not the request's fault: an answer (not a dropped connection), and the log
            log.exception("GET %s failed", path)
            self._json(500, {"error": "internal error: the server's log has the details"})

    def _songs(self, ref: str, query: dict[str, str]) -> None:
        playlist_id = parse_playlist_ref(ref)
        sort = query.get("sort") or "position"
        order = (query.get("order") or "asc").lower()
        if sort not in SONG_SORTS or order not in ("asc", "desc"):
            self._json(400, {"error": f"sort is one of {', '.join(SONG_SORTS)}; order is asc or desc"})
            return
        try:
            offset = int(query.get("offset") or 0)
            limit = int(query.get("limit") or 50)
        except ValueError:
            self._json(400, {"error": "offset and limit are whole numbers"})
            return
        if offset < 0 or not 1 <= limit <= MAX_SONG_PAGE:
            self._json(400, {"error": f"offset >= 0 and limit between 1 and {MAX_SONG_PAGE}"})
            return
        search = (query.get("q") or "").strip()[:200]
        pattern = "%" + search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%" if search else None
        found = self.dashboard.query(
            lambda e: e.execute(
                "SELECT playlist_id, name, description, owner_name, followers, total_items, extracted_at "
                "FROM playlists WHERE playlist_id = ?",
                [playlist_id],
            )
        )
        if not found.rows:
            raise _NotFound(f"no playlist {playlist_id} in the lake")
        sql = SONGS_SQL.replace("{order}", f"{SONG_SORTS[sort]} {order.upper()}")
        params = {"playlist": playlist_id, "pattern": pattern, "limit": limit, "offset": offset}
        result = self.dashboard.query(lambda e: e.execute(sql, params))
        rows = result_rows(result)
        total = rows[0].pop("total") if rows else 0
        for row in rows[1:]:
            row.pop("total")
        self._json(
            200,
            {
                "playlist": result_rows(found)[0],
                "total": total if rows else self._count_matches(sql, params),
                "offset": offset,
                "limit": limit,
                "rows": rows,
            },
        )

    def _count_matches(self, sql: str, params: dict[str, Any]) -> int:
        """The matches when the asked page is past the last one (the window count came with no row)."""
        if params["offset"] == 0:
            return 0
        again = self.dashboard.query(lambda e: e.execute(sql, {**params, "offset": 0, "limit": 1}))
        return int(again.rows[0][-1]) if again.rows else 0

    def _report(self, name: str) -> Any:
        reports = all_reports()
        if name not in reports:
            raise _NotFound(f"no report named {name!r}")
        return reports[name]


def report_params(name: str, query: dict[str, str]) -> dict[str, str]:
    """The query-string parameters a report takes (`run_report` validates them): `playlist` for every report,
    the listening ones (user, from, to, period, by, include_incognito) for the listening reports. Others, like
    the page's own state, are not the report's."""
    allowed = {"playlist", *(LISTENING_PARAMS if name in LISTENING_ORDER else ())}
    return {k: v for k, v in query.items() if k in allowed}


class _NotFound(Exception):
    pass


def _page() -> bytes:
    return resources.files("spotify_pipeline").joinpath("web/index.html").read_bytes()


_CSP = content_security_policy(_page())
