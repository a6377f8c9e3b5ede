"""`spotify-pipeline serve`: a local, read-only web dashboard and JSON API over the named reports.

Standard library HTTP server, one thread per connection; every query goes through one sandboxed
`QueryEngine` (see `query.py`: one SELECT, no file access beyond the tables, loaded into memory, a time
and memory limit) under a lock, reopened when the lake's catalog changes.

HTTP hardening, as a web page the user visits is hostile too:
- the Host header must name this server (loopback names, the `--host` given, `--allow-host` names, and on
  a wildcard address any IP literal) and the port: a DNS-rebinding page's Host names its own domain;
- a request a browser marks as cross-site (`Sec-Fetch-Site`) or with a foreign `Origin` is refused, so a
  page elsewhere cannot fire a query blind; no CORS header is ever sent;
- only GET and HEAD (405 otherwise); every answer carries a restrictive Content-Security-Policy,
  `X-Frame-Options: DENY`, `nosniff`, `Referrer-Policy: no-referrer` and `Cache-Control: no-store`;
- `/api/query` rows are capped (`MAX_QUERY_ROWS`, `truncated` says so).
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import json
import re
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from typing import Any

from .catalog import Catalog
from .errors import PipelineError
from .lake.layout import CATALOG_FILE
from .query import QueryEngine, QueryResult, result_rows
from .reports import REPORT_ORDER, all_reports, run_report
from .reports.charts import chart_spec, render_svg

OPENAPI: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "spotify-pipeline dashboard API",
        "version": "1",
        "description": "Read-only JSON over the lake's named reports.",
    },
    "paths": {
        "/api/reports": {
            "get": {
                "summary": "List the reports",
                "responses": {
                    "200": {
                        "description": "Reports",
                        "content": {
                            "application/json": {
                                "schema": {"type": "array", "items": {"$ref": "#/components/schemas/ReportInfo"}}
                            }
                        },
                    }
                },
            }
        },
        "/api/reports/{name}": {
            "get": {
                "summary": "Run one report",
                "parameters": [
                    {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}},
                    {
                        "name": "playlist",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "string", "pattern": "^[0-9A-Za-z]{22}$"},
                    },
                ],
                "responses": {
                    "200": {
                        "description": "Rows",
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ReportResult"}}},
                    },
                    "400": {
                        "description": "Bad parameter",
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
                    },
                    "404": {
                        "description": "No such report",
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
                    },
                },
            }
        },
        "/api/charts/{name}.svg": {
            "get": {
                "summary": "A report's chart as SVG",
                "responses": {
                    "200": {"description": "SVG", "content": {"image/svg+xml": {}}},
                    "204": {"description": "No rows"},
                },
            }
        },
        "/api/playlists": {
            "get": {
                "summary": "Playlists for the picker",
                "responses": {
                    "200": {
                        "description": "Playlists",
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "array",
                                    "items": {
                                        "type": "object",
                                        "required": ["playlist_id", "name", "items"],
                                        "properties": {
                                            "playlist_id": {"type": "string"},
                                            "name": {"type": ["string", "null"]},
                                            "items": {"type": "integer"},
                                        },
                                    },
                                }
                            }
                        },
                    }
                },
            }
        },
        "/api/query": {
            "get": {
                "summary": "One read-only SQL query (a SELECT; sandboxed, time-limited, at most 10,000 rows)",
                "parameters": [{"name": "sql", "in": "query", "required": True, "schema": {"type": "string"}}],
                "responses": {
                    "200": {
                        "description": "Rows",
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ReportResult"}}},
                    },
                    "400": {
                        "description": "Refused or failed",
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
                    },
                },
            }
        },
    },
    "components": {
        "schemas": {
            "ReportInfo": {
                "type": "object",
                "required": ["name", "title", "description", "chart"],
                "properties": {
                    "name": {"type": "string"},
                    "title": {"type": "string"},
                    "description": {"type": "string"},
                    "chart": {"type": "boolean"},
                },
            },
            "ReportResult": {
                "type": "object",
                "required": ["columns", "rows"],
                "properties": {
                    "name": {"type": "string"},
                    "title": {"type": "string"},
                    "columns": {"type": "array", "items": {"type": "string"}},
                    "rows": {"type": "array", "items": {"type": "object"}},
                    "truncated": {"type": "boolean", "description": "/api/query: only the first 10,000 rows"},
                },
            },
            "Error": {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}},
        }
    },
}


def result_json(result: QueryResult, **extra: Any) -> dict[str, Any]:
    return {**extra, "columns": result.columns, "rows": result_rows(result)}


MAX_QUERY_ROWS = 10_000
DEFAULT_QUERY_TIMEOUT_S = 30.0
DEFAULT_MEMORY_LIMIT = "2GB"
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
# Recognised to warn about them (serve binds 127.0.0.1 unless --host says otherwise).
WILDCARD_ADDRESSES = frozenset({"", "0.0.0.0", "::"})  # nosec B104


def content_security_policy(page: bytes) -> str:
    """Same-origin only; the page's one inline script is allowed by its hash, nothing else inline runs."""
    scripts = re.findall(rb"<script>(.*?)</script>", page, re.DOTALL)
    hashes = " ".join(f"'sha256-{base64.b64encode(hashlib.sha256(s).digest()).decode()}'" for s in scripts)
    return (
        f"default-src 'self'; script-src 'self' {hashes}; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
        "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )


_HOST = re.compile(r"\[(?P<v6>[0-9a-f:.]+)\](?::(?P<v6port>\d+))?|(?P<name>[^:\[\]]+)(?::(?P<port>\d+))?")


def split_host(value: str) -> tuple[str, int | None]:
    """A Host header (`name`, `name:port`, `[v6]:port`) -> (lower-case name, port or None); ("", None) if
    it is none of those."""
    match = _HOST.fullmatch(value.strip().lower())
    if not match:
        return "", None
    name = match["v6"] or match["name"]
    port = match["v6port"] or match["port"]
    return name.rstrip("."), int(port) if port else None


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


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
    ) -> None:
        self.lake_root = lake_root
        self.host = host
        self.query_timeout = query_timeout
        self.memory_limit = memory_limit
        self.allowed_hosts = LOOPBACK_NAMES | {h.strip().strip("[]").lower() for h in allowed_hosts}
        if host not in WILDCARD_ADDRESSES:
            self.allowed_hosts |= {host.strip("[]").lower()}
        self._engine: QueryEngine | None = None
        self._stamp = 0.0
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
        return name not in LOOPBACK_NAMES and not (_is_ip(name) and ipaddress.ip_address(name).is_loopback)

    def host_allowed(self, value: str | None) -> bool:
        """The request's Host header names this server: an allowed name (or, on a wildcard address, an IP
        literal: a DNS-rebinding page cannot make a browser send one) and this server's port."""
        if not value:
            return False
        name, port = split_host(value)
        if (port if port is not None else 80) != self.port:
            return False
        return name in self.allowed_hosts or (self.host in WILDCARD_ADDRESSES and _is_ip(name))

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host.decode() if isinstance(host, bytes) else host}:{port}"

    def query(self, fn: Any) -> Any:
        """Run `fn(engine)` under the lock, reopening the engine when the catalog has changed."""
        with self._lock:
            stamp = (self.lake_root / CATALOG_FILE).stat().st_mtime if (self.lake_root / CATALOG_FILE).exists() else 0
            if self._engine is None or stamp != self._stamp:
                if self._engine is not None:
                    self._engine.close()
                self._engine = QueryEngine(
                    Catalog(self.lake_root),
                    in_memory=True,
                    timeout=self.query_timeout,
                    memory_limit=self.memory_limit,
                )
                self._stamp = stamp
            return fn(self._engine)

    def start(self) -> Dashboard:
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self.httpd.serve_forever()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        if self._engine is not None:
            self._engine.close()


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

    def _json(self, status: int, payload: Any) -> None:
        body = json.dumps(payload, ensure_ascii=False, allow_nan=False).encode()
        self._send(status, body, "application/json; charset=utf-8")

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

    do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_TRACE = do_CONNECT = _refuse

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
                        }
                        for n in REPORT_ORDER
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
                result = self.dashboard.query(lambda e: run_report(e, name, query))
                self._json(200, result_json(result, name=name, title=report.title))
            elif path.startswith("/api/charts/") and path.endswith(".svg"):
                name = path.removeprefix("/api/charts/").removesuffix(".svg")
                self._report(name)
                result = self.dashboard.query(lambda e: run_report(e, name, query))
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
        except PipelineError as exc:
            self._json(400, {"error": str(exc)})

    def _report(self, name: str) -> Any:
        reports = all_reports()
        if name not in reports:
            raise _NotFound(f"no report named {name!r}")
        return reports[name]


class _NotFound(Exception):
    pass


def _page() -> bytes:
    return resources.files("spotify_pipeline").joinpath("web/index.html").read_bytes()


_CSP = content_security_policy(_page())
