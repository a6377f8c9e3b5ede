"""`spotify-pipeline serve`: a local, read-only web dashboard and JSON API over the named reports.

Standard library HTTP server, one thread per connection; every query goes through one `QueryEngine`
(read-only: SELECT and EXPLAIN only) under a lock, reopened when the lake's catalog changes.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from typing import Any

from .catalog import Catalog
from .errors import PipelineError
from .lake.layout import CATALOG_FILE
from .query import QueryEngine, QueryResult
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
                "summary": "A read-only SQL query",
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
                },
            },
            "Error": {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}},
        }
    },
}


def _json_value(value: Any) -> Any:
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, list):
        return [_json_value(v) for v in value]
    return value


def result_json(result: QueryResult, **extra: Any) -> dict[str, Any]:
    rows = [{c: _json_value(v) for c, v in zip(result.columns, row, strict=True)} for row in result.rows]
    return {**extra, "columns": result.columns, "rows": rows}


class Dashboard:
    def __init__(self, lake_root: Path, host: str = "127.0.0.1", port: int = 8000) -> None:
        self.lake_root = lake_root
        self._engine: QueryEngine | None = None
        self._stamp = 0.0
        self._lock = threading.Lock()
        self.httpd = ThreadingHTTPServer((host, port), _Handler)
        self.httpd.daemon_threads = True
        self.httpd.dashboard = self  # type: ignore[attr-defined]
        self._thread: threading.Thread | None = None

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
                self._engine = QueryEngine(Catalog(self.lake_root), in_memory=True)
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

    def _send(self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, payload: Any) -> None:
        self._send(status, json.dumps(payload, ensure_ascii=False).encode(), "application/json; charset=utf-8")

    def _refuse(self) -> None:
        self._send(405, b'{"error": "read-only: only GET is allowed"}', "application/json", {"Allow": "GET, HEAD"})

    do_POST = do_PUT = do_DELETE = do_PATCH = _refuse

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        parsed = urllib.parse.urlsplit(self.path)
        query = {k: v[-1] for k, v in urllib.parse.parse_qs(parsed.query).items()}
        path = parsed.path
        try:
            if path in ("/", "/index.html"):
                page = resources.files("spotify_pipeline").joinpath("web/index.html").read_bytes()
                self._send(200, page, "text/html; charset=utf-8")
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
                result = self.dashboard.query(lambda e: e.execute(query["sql"]))
                self._json(200, result_json(result))
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
