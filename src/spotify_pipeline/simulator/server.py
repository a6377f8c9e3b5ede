"""The simulated Spotify Web API server: accounts (`/api/token`) and the Web API (`/v1/...`) on one port.

Real HTTP/1.1 with keep-alive on 127.0.0.1, one thread per connection. Start it in-process with
`SimulatedSpotify(...).start()` (or as a context manager) or from the CLI with `spotify-pipeline simulate`.
Admin endpoints under `/_admin/` let tests and benchmarks script faults, change playlists and read stats.
"""

from __future__ import annotations

import collections
import re
import secrets
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer
from typing import Any

from .catalog import Catalog
from .faults import BODY_FAULTS, FaultPlan
from .generate import CatalogConfig
from .handler import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, HttpError, Token
from .routes_accounts import AccountRoutes
from .routes_admin import AdminRoutes
from .routes_catalog import CatalogRoutes
from .routes_me import MeRoutes


@dataclass
class RequestStats:
    """What the server has answered: by route, by status, and which faults it served. Thread-safe."""

    by_route: collections.Counter[str] = field(default_factory=collections.Counter)
    by_status: collections.Counter[int] = field(default_factory=collections.Counter)
    faults: collections.Counter[str] = field(default_factory=collections.Counter)
    ids_by_route: dict[str, collections.Counter[str]] = field(default_factory=dict)
    first_api_at: float | None = None  # time.monotonic() of the first and the latest Web API request
    last_api_at: float | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, route: str, status: int, ids: list[str] | None = None) -> None:
        now = time.monotonic()
        with self._lock:
            self.by_route[route] += 1
            self.by_status[status] += 1
            if route != "token":
                self.first_api_at = self.first_api_at or now
                self.last_api_at = now
            if ids:
                self.ids_by_route.setdefault(route, collections.Counter()).update(ids)

    def record_fault(self, kind: str) -> None:
        with self._lock:
            self.faults[kind] += 1

    @property
    def api_requests(self) -> int:
        """Requests to the Web API (not the token endpoint, not admin)."""
        with self._lock:
            return sum(n for route, n in self.by_route.items() if route not in ("token",))

    def reset(self) -> None:
        with self._lock:
            self.by_route.clear()
            self.by_status.clear()
            self.faults.clear()
            self.first_api_at = self.last_api_at = None
            self.ids_by_route.clear()

    def as_dict(self) -> dict[str, Any]:
        with self._lock:
            return {
                "by_route": dict(self.by_route),
                "by_status": {str(k): v for k, v in self.by_status.items()},
                "faults": dict(self.faults),
                "api_requests": sum(n for r, n in self.by_route.items() if r != "token"),
            }


class SimulatedSpotify:
    """A Spotify-compatible HTTP server over a generated catalog."""

    def __init__(
        self,
        catalog: Catalog | None = None,
        *,
        port: int = 0,
        client_id: str = DEFAULT_CLIENT_ID,
        client_secret: str = DEFAULT_CLIENT_SECRET,
        token_ttl: float = 3600.0,
        faults: FaultPlan | None = None,
        legacy_items: bool = False,
        login_user: str = "alice",
        rotate_refresh_tokens: bool = False,
        refresh_token_max_age: float | None = None,
    ) -> None:
        self.catalog = catalog or Catalog(CatalogConfig())
        self.client_id = client_id
        self.client_secret = client_secret
        self.token_ttl = token_ttl
        self.faults = faults or FaultPlan()
        self.legacy_items = legacy_items  # serve only the pre-2026 `/tracks` + `track` forms
        self.login_user = login_user  # who "approves" the authorize page
        self.rotate_refresh_tokens = rotate_refresh_tokens
        # Seconds a login's refresh tokens work, counted from the login (Spotify: 6 months; refreshing, even
        # with rotation, does not extend it); past it the token endpoint answers invalid_grant. None = forever.
        self.refresh_token_max_age = refresh_token_max_age
        self._codes: dict[str, dict[str, Any]] = {}
        self._refresh: dict[str, dict[str, Any]] = {}
        self.plays: dict[str, int] = {}  # user -> plays so far
        self.stats = RequestStats()
        self._tokens: dict[str, Token] = {}
        self._tokens_lock = threading.Lock()
        self._httpd = _Server(("127.0.0.1", port), _Handler)
        self._httpd.app = self
        self._thread: threading.Thread | None = None

    # ---- lifecycle -----------------------------------------------------------------------------------
    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_url(self) -> str:
        return f"{self.base_url}/v1"

    @property
    def accounts_url(self) -> str:
        return self.base_url

    def start(self) -> SimulatedSpotify:
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="simulated-spotify", daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self._httpd.serve_forever()

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread:
            self._thread.join(timeout=5)

    def __enter__(self) -> SimulatedSpotify:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- tokens --------------------------------------------------------------------------------------
    def issue_token(self, user: str | None = None) -> tuple[str, int]:
        token = secrets.token_urlsafe(32)
        with self._tokens_lock:
            self._tokens[token] = Token(time.monotonic() + self.token_ttl, user)
        return token, int(self.token_ttl)

    def expire_tokens(self) -> None:
        """Make every issued token expired now (to test refresh mid-run)."""
        with self._tokens_lock:
            for token in self._tokens.values():
                token.expires_at = 0.0

    def authenticate(self, header: str | None) -> Token:
        if not header:
            raise HttpError(401, "No token provided")
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer" or not value:
            raise HttpError(400, "Only valid bearer authentication supported")
        with self._tokens_lock:
            token = self._tokens.get(value)
        if token is None:
            raise HttpError(401, "Invalid access token")
        if token.expires_at <= time.monotonic():
            raise HttpError(401, "The access token expired")
        return token

    def plays_of(self, user: str) -> int:
        return self.plays.setdefault(user, 30)

    def add_plays(self, user: str, count: int) -> None:
        with self._tokens_lock:
            self.plays[user] = self.plays_of(user) + count

    def revoke_refresh_tokens(self) -> None:
        with self._tokens_lock:
            for grant in self._refresh.values():
                grant["revoked"] = True

    def expire_logins(self) -> None:
        """Make every login's refresh token past its lifetime now, as after Spotify's 6 months."""
        with self._tokens_lock:
            for grant in self._refresh.values():
                grant["expired"] = True

    def mutate(self, playlist_indices: list[int]) -> None:
        self.catalog.mutate(playlist_indices)

    def playlist_ids(self) -> list[str]:
        return [self.catalog.id_of("playlist", i) for i in range(self.catalog.config.playlists)]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128
    app: SimulatedSpotify


_ROUTES: list[tuple[str, re.Pattern[str], str]] = [
    ("GET", re.compile(r"^/v1/playlists/([^/]+)$"), "playlist"),
    ("GET", re.compile(r"^/v1/playlists/([^/]+)/items$"), "playlist_items"),
    ("GET", re.compile(r"^/v1/playlists/([^/]+)/tracks$"), "playlist_tracks"),
    ("GET", re.compile(r"^/v1/artists/([^/]+)$"), "artist"),
    ("GET", re.compile(r"^/v1/artists/([^/]+)/albums$"), "artist_albums"),
    ("GET", re.compile(r"^/v1/artists$"), "artists"),
    ("GET", re.compile(r"^/v1/albums/([^/]+)$"), "album"),
    ("GET", re.compile(r"^/v1/albums/([^/]+)/tracks$"), "album_tracks"),
    ("GET", re.compile(r"^/v1/albums$"), "albums"),
    ("GET", re.compile(r"^/v1/tracks/([^/]+)$"), "track"),
    ("GET", re.compile(r"^/v1/tracks$"), "tracks"),
    ("GET", re.compile(r"^/v1/search$"), "search"),
    ("POST", re.compile(r"^/api/token$"), "token"),
    ("GET", re.compile(r"^/authorize$"), "authorize"),
    ("GET", re.compile(r"^/v1/me$"), "me"),
    ("GET", re.compile(r"^/v1/me/playlists$"), "me_playlists"),
    ("GET", re.compile(r"^/v1/me/tracks$"), "me_tracks"),
    ("GET", re.compile(r"^/v1/me/library/contains$"), "library_contains"),
    ("GET", re.compile(r"^/v1/me/player/recently-played$"), "recently_played"),
    ("GET", re.compile(r"^/v1/me/top/(artists|tracks)$"), "top"),
    ("POST", re.compile(r"^/_admin/plays$"), "admin_plays"),
    ("POST", re.compile(r"^/_admin/revoke$"), "admin_revoke"),
    ("GET", re.compile(r"^/_admin/stats$"), "admin_stats"),
    ("POST", re.compile(r"^/_admin/faults$"), "admin_faults"),
    ("POST", re.compile(r"^/_admin/mutate$"), "admin_mutate"),
    ("POST", re.compile(r"^/_admin/expire-tokens$"), "admin_expire"),
    ("POST", re.compile(r"^/_admin/expire-login$"), "admin_expire_login"),
]


class _Handler(AccountRoutes, MeRoutes, CatalogRoutes, AdminRoutes):
    """One connection's requests: each is matched against `_ROUTES` and answered by `_route_<name>` of a route
    family, unless the fault plan says otherwise."""

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def _dispatch(self, method: str) -> None:
        parsed = urllib.parse.urlsplit(self.path)
        query = {k: v[-1] for k, v in urllib.parse.parse_qs(parsed.query, keep_blank_values=True).items()}
        body = self._read_body()
        route_name: str = "unknown"
        args: tuple[str, ...] = ()
        path = parsed.path.rstrip("/") or "/"  # Spotify accepts a trailing slash (`/v1/me/`, `/v1/tracks/?ids=`)
        for route_method, pattern, name in _ROUTES:
            match = pattern.match(path)
            if match and route_method == method:
                route_name, args = name, match.groups()
                break
        fault = None if route_name.startswith("admin") else self.app.faults.next_fault(parsed.path)
        latency = self.app.faults.latency_ms
        if latency and parsed.path.startswith("/v1/"):
            time.sleep(latency / 1000)
        body_fault = None
        if fault is not None:
            self.app.stats.record_fault(fault.kind)
            if fault.kind == "slow":
                time.sleep(fault.delay_ms / 1000)
            elif fault.kind in BODY_FAULTS:
                body_fault = fault.kind
            else:
                self.app.stats.record(route_name, _FAULT_STATUS.get(fault.kind, 200))
                self._serve_fault(fault)
                return
        try:
            if route_name == "unknown":
                raise HttpError(404, "Service not found")
            handler = getattr(self, f"_route_{route_name}")
            status, payload, ids = handler(query, body, *args)
        except HttpError as err:
            self.app.stats.record(route_name, err.status)
            if err.status == 302:
                self._send_bytes(302, b"", err.headers)
                return
            if route_name == "token":
                self._send_json(err.status, {"error": err.message, **err.extra}, err.headers)
            else:
                self._send_json(
                    err.status,
                    {"error": {"status": err.status, "message": err.message, **err.extra}},
                    err.headers,
                )
            return
        self.app.stats.record(route_name, status, ids)
        if body_fault is not None:
            payload = _tamper(payload, body_fault)
        self._send_json(status, payload)


_FAULT_STATUS = {
    "429": 429,
    "quota": 429,
    "500": 500,
    "502": 502,
    "503": 503,
    "drop": 0,
    "truncate": 200,
    "malformed": 200,
}


def _tamper(payload: Any, kind: str) -> Any:
    """Body faults: an unknown field everywhere, a page without `items`, or items of an unexpected type."""
    if not isinstance(payload, dict):
        return payload
    inner = payload.get("items")
    page: dict[str, Any] = inner if isinstance(inner, dict) else payload
    listed = page.get("items")
    entries: list[Any] = listed if isinstance(listed, list) else []
    if kind == "missing_items":
        page.pop("items", None)
    elif kind == "unknown_field":
        payload["x_new_field"] = {"added": "by an API change"}
        for entry in entries:
            entry["x_new_field"] = 1
            if isinstance(entry.get("item"), dict):
                entry["item"]["x_new_track_field"] = True
    elif kind == "bad_type":
        for entry in entries[:3]:
            for key in ("item", "track"):
                if isinstance(entry.get(key), dict):
                    entry[key] = {**entry[key], "type": "audiobook"}
    return payload
