"""The OpenAPI 3.1 document of the dashboard's JSON API, served at `/api/openapi.json`; the browser tests validate
every answer against it."""

from __future__ import annotations

from typing import Any

# The sort keys of /api/playlists/{id}/songs and the SQL each sorts by (dashboard.py runs it).
SONG_SORTS = {
    "position": "position",
    "name": "lower(name)",
    "artists": "lower(artists)",
    "album": "lower(album)",
    "duration": "duration_ms",
    "popularity": "popularity",
    "added": "added_at",
}
_PLAYLIST_PARAM: dict[str, Any] = {
    "name": "playlist",
    "in": "query",
    "required": False,
    "schema": {"type": "string", "pattern": "^[0-9A-Za-z]{22}$"},
}


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
                "parameters": [{"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}],
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
        "/api/summary": {
            "get": {
                "summary": "Key numbers and data freshness (every playlist, or one)",
                "parameters": [_PLAYLIST_PARAM],
                "responses": {
                    "200": {
                        "description": "Summary",
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Summary"}}},
                    }
                },
            }
        },
        "/api/charts/{name}.json": {
            "get": {
                "summary": "A report's chart as a Vega-Lite spec with its rows, or why it is not drawn",
                "parameters": [
                    {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}},
                    _PLAYLIST_PARAM,
                ],
                "responses": {
                    "200": {
                        "description": "Spec",
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "required": ["spec", "note"],
                                    "properties": {
                                        "spec": {"type": ["object", "null"]},
                                        "note": {"type": ["string", "null"]},
                                    },
                                }
                            }
                        },
                    }
                },
            }
        },
        "/api/playlists/{id}/songs": {
            "get": {
                "summary": "One playlist and its items, searched, sorted and paged",
                "parameters": [
                    {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}},
                    {"name": "q", "in": "query", "required": False, "schema": {"type": "string"}},
                    {"name": "sort", "in": "query", "required": False, "schema": {"enum": list(SONG_SORTS)}},
                    {"name": "order", "in": "query", "required": False, "schema": {"enum": ["asc", "desc"]}},
                    {"name": "offset", "in": "query", "required": False, "schema": {"type": "integer"}},
                    {"name": "limit", "in": "query", "required": False, "schema": {"type": "integer"}},
                ],
                "responses": {
                    "200": {
                        "description": "Songs",
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/SongPage"}}},
                    },
                    "404": {
                        "description": "No such playlist",
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
                    },
                },
            }
        },
        "/graphql": {
            "get": {
                "summary": "GraphQL (read-only; ?query=, ?variables= as JSON, ?operationName=). POST with a JSON body "
                "is answered too, here only. `spotify-pipeline graphql-schema` prints the schema",
                "responses": {"200": {"description": "GraphQL response", "content": {"application/json": {}}}},
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
                    "time_field": {"type": ["string", "null"], "description": "the column the time range filters"},
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
            "Summary": {
                "type": "object",
                "required": ["playlists", "items", "songs", "artists", "fresh", "last_run", "playlist_name"],
                "properties": {
                    "playlists": {"type": "integer"},
                    "items": {"type": "integer"},
                    "songs": {"type": "integer"},
                    "artists": {"type": "integer"},
                    "fresh": {"type": ["string", "null"]},
                    "last_run": {"type": ["object", "null"]},
                    "playlist_name": {"type": ["string", "null"]},
                },
            },
            "SongPage": {
                "type": "object",
                "required": ["playlist", "total", "offset", "limit", "rows"],
                "properties": {
                    "playlist": {"type": "object"},
                    "total": {"type": "integer"},
                    "offset": {"type": "integer"},
                    "limit": {"type": "integer"},
                    "rows": {"type": "array", "items": {"type": "object"}},
                },
            },
        }
    },
}

# Every path answered by the query engine may be unavailable for a moment (dashboard.py): its worker died twice
# in a row (the OOM killer), or the tables kept being committed while they were opened (query/consistent.py).
_UNAVAILABLE: dict[str, Any] = {
    "description": "The query engine is unavailable for a moment: retry after Retry-After seconds",
    "headers": {"Retry-After": {"schema": {"type": "integer"}}},
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
}
for _path, _item in OPENAPI["paths"].items():
    if _path not in ("/api/reports", "/graphql"):  # the list of reports reads no table; GraphQL answers errors
        for _operation in _item.values():
            _operation["responses"]["503"] = _UNAVAILABLE
