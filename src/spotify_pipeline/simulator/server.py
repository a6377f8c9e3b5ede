"""The simulated Spotify Web API server: accounts (`/api/token`) and the Web API (`/v1/...`) on one port.

Real HTTP/1.1 with keep-alive on 127.0.0.1, one thread per connection. Start it in-process with
`SimulatedSpotify(...).start()` (or as a context manager) or from the CLI with `spotify-pipeline simulate`.
Admin endpoints under `/_admin/` let tests and benchmarks script faults, change playlists and read stats.
"""

from __future__ import annotations

import base64
import binascii
import collections
import contextlib
import functools
import hashlib
import json
import re
import secrets
import socket
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from .catalog import Catalog, CatalogConfig
from .faults import BODY_FAULTS, Fault, FaultPlan
from .fields import FieldsSyntaxError, filter_fields
from .ids import is_base62_id

# Playlist item pages: the real API accepts up to 100 items per page (the OpenAPI document's shared
# `QueryLimit` says 50; the real endpoint's own documentation and behaviour say 100). Other pages: 50.
PLAYLIST_ITEMS_MAX_LIMIT = 100
BATCH_LIMITS = {"artists": 50, "albums": 20, "tracks": 50}
# Search and an artist's albums: (default, maximum) of `limit`. Development Mode apps get at most 10 (default 5)
# since February 2026; extended quota keeps 20 and 50.
SMALL_PAGES = {"extended": (20, 50), "development": (5, 10)}
SEARCH_TYPES = ("album", "artist", "playlist", "track", "show", "episode", "audiobook")
LIBRARY_CONTAINS_MAX = 40
# The OAuth token type and the simulator's documented test credentials: not secrets.
TOKEN_TYPE = "Bearer"  # nosec B105
DEFAULT_CLIENT_ID = "sim-client-id"
DEFAULT_CLIENT_SECRET = "sim-client-secret"  # nosec B105


class HttpError(Exception):
    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}
        self.extra = extra


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


@dataclass
class Token:
    expires_at: float
    user: str | None  # None for client credentials: no user behind the token


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


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        return  # quiet: the stats say what happened

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    # ---- plumbing ------------------------------------------------------------------------------------
    @property
    def app(self) -> SimulatedSpotify:
        return self.server.app

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

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send_json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
        self._send_bytes(status, data, headers)

    def _send_bytes(self, status: int, data: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def _serve_fault(self, fault: Fault) -> None:
        kind = fault.kind
        if kind in ("429", "quota"):
            extra = {"reason": "QUOTA_EXCEEDED"} if kind == "quota" else {}
            message = "Quota exceeded" if kind == "quota" else "API rate limit exceeded"
            self._send_json(
                429,
                {"error": {"status": 429, "message": message, **extra}},
                {"Retry-After": str(fault.retry_after)},
            )
        elif kind in ("500", "502", "503"):
            status = int(kind)
            message = {500: "Server error", 502: "Bad gateway", 503: "Service unavailable"}[status]
            self._send_json(status, {"error": {"status": status, "message": message}})
        elif kind == "malformed":
            self._send_bytes(200, b'{"href": "broken", "items": [')
        elif kind == "truncate":
            data = b'{"error": {"status": 200, "message": "this body was cut short by the simulator"}}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            self._drop()
        else:  # drop
            self._drop()

    def _drop(self) -> None:
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    # ---- accounts ------------------------------------------------------------------------------------
    def _route_token(self, query: dict[str, str], body: bytes) -> tuple[int, Any, None]:
        form = {k: v[-1] for k, v in urllib.parse.parse_qs(body.decode(errors="replace")).items()}
        client_id, client_secret = form.get("client_id"), form.get("client_secret")
        auth = self.headers.get("Authorization", "")
        if auth.lower().startswith("basic "):
            try:
                decoded = base64.b64decode(auth[6:].strip(), validate=True).decode()
            except (binascii.Error, UnicodeDecodeError) as exc:
                raise HttpError(400, "invalid_client", error_description="Invalid client") from exc
            client_id, _, client_secret = decoded.partition(":")
        grant = form.get("grant_type")
        if grant is None:
            raise HttpError(400, "unsupported_grant_type", error_description="grant_type parameter is missing")
        if grant == "authorization_code":
            return self._code_grant(form, client_id, client_secret)
        if grant == "refresh_token":
            return self._refresh_grant(form, client_id, client_secret)
        if grant != "client_credentials":
            raise HttpError(400, "unsupported_grant_type", error_description=f"grant_type {grant} not supported")
        if not client_id:
            raise HttpError(400, "invalid_client", error_description="Invalid client")
        if client_id != self.app.client_id or not secrets.compare_digest(client_secret or "", self.app.client_secret):
            raise HttpError(400, "invalid_client", error_description="Invalid client secret")
        token, ttl = self.app.issue_token(user=None)
        return 200, {"access_token": token, "token_type": TOKEN_TYPE, "expires_in": ttl}, None

    def _check_secret(self, client_secret: str | None) -> None:
        """A client secret, when one is sent, must be the app's."""
        if client_secret is not None and not secrets.compare_digest(client_secret, self.app.client_secret):
            raise HttpError(400, "invalid_client", error_description="Invalid client secret")

    def _code_grant(
        self, form: dict[str, str], client_id: str | None, client_secret: str | None
    ) -> tuple[int, Any, None]:
        """Authorization code, with the client secret or with PKCE (the code_verifier must hash to the
        code_challenge, S256). A code issued for a PKCE challenge needs its verifier either way."""
        client_id = client_id or form.get("client_id")
        if client_id != self.app.client_id:
            raise HttpError(400, "invalid_client", error_description="Invalid client")
        self._check_secret(client_secret)
        grant = self.app._codes.pop(form.get("code", ""), None)
        if grant is None or grant["expires"] < time.monotonic():
            raise HttpError(400, "invalid_grant", error_description="Invalid authorization code")
        if form.get("redirect_uri") != grant["redirect_uri"]:
            raise HttpError(400, "invalid_grant", error_description="Invalid redirect URI")
        if grant["challenge"] is None:
            if client_secret is None:  # neither a secret nor PKCE: the client is not authenticated
                raise HttpError(400, "invalid_client", error_description="Invalid client")
        else:
            verifier = form.get("code_verifier", "")
            challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
            if not verifier or not secrets.compare_digest(challenge, grant["challenge"]):
                raise HttpError(400, "invalid_grant", error_description="code_verifier was incorrect")
        return 200, self._user_tokens(grant["user"], grant["scope"]), None

    def _refresh_grant(
        self, form: dict[str, str], client_id: str | None, client_secret: str | None
    ) -> tuple[int, Any, None]:
        client_id = client_id or form.get("client_id")
        self._check_secret(client_secret)
        refresh = form.get("refresh_token", "")
        with self.app._tokens_lock:
            grant = self.app._refresh.get(refresh)
        if grant is None or grant["client_id"] != client_id:
            raise HttpError(400, "invalid_grant", error_description="Invalid refresh token")
        if grant["revoked"]:
            raise HttpError(400, "invalid_grant", error_description="Refresh token revoked")
        max_age = self.app.refresh_token_max_age
        if grant.get("expired") or (max_age is not None and time.monotonic() - grant["authorized_at"] >= max_age):
            raise HttpError(400, "invalid_grant", error_description="Refresh token expired")
        body = self._user_tokens(grant["user"], grant["scope"], rotate_from=refresh)
        return 200, body, None

    def _user_tokens(self, user: str, scope: str, rotate_from: str | None = None) -> dict[str, Any]:
        token, ttl = self.app.issue_token(user=user)
        body: dict[str, Any] = {"access_token": token, "token_type": TOKEN_TYPE, "scope": scope, "expires_in": ttl}
        if rotate_from is None or self.app.rotate_refresh_tokens:
            refresh = secrets.token_urlsafe(32)
            with self.app._tokens_lock:
                authorized_at = time.monotonic()
                if rotate_from is not None:
                    self.app._refresh[rotate_from]["revoked"] = True
                    authorized_at = self.app._refresh[rotate_from]["authorized_at"]  # a rotation is no new login
                self.app._refresh[refresh] = {
                    "user": user,
                    "client_id": self.app.client_id,
                    "scope": scope,
                    "revoked": False,
                    "authorized_at": authorized_at,
                }
            body["refresh_token"] = refresh
        return body

    def _route_authorize(self, query: dict[str, str], body: bytes) -> tuple[int, Any, None]:
        """The consent page, approved at once for `login_user`: redirects to the loopback callback."""
        redirect = query.get("redirect_uri", "")
        target = urllib.parse.urlsplit(redirect)
        if query.get("client_id") != self.app.client_id:
            raise HttpError(400, "INVALID_CLIENT: Invalid client")
        if target.scheme != "http" or target.hostname not in ("127.0.0.1", "::1"):
            raise HttpError(400, "INVALID_CLIENT: Insecure redirect URI (use a loopback IP literal, not localhost)")
        if query.get("response_type") != "code":
            raise HttpError(400, "unsupported_response_type")
        # PKCE is optional here: without it the code is exchanged with the client secret.
        pkce = "code_challenge" in query or "code_challenge_method" in query
        if pkce and query.get("code_challenge_method") != "S256":
            raise HttpError(400, "unsupported_response_type")
        if pkce and not query.get("code_challenge"):
            raise HttpError(400, "code_challenge is required")
        code = secrets.token_urlsafe(24)
        self.app._codes[code] = {
            "redirect_uri": redirect,
            "challenge": query["code_challenge"] if pkce else None,
            "user": self.app.login_user,
            "scope": query.get("scope", ""),
            "expires": time.monotonic() + 600,
        }
        params = {"code": code}
        if "state" in query:
            params["state"] = query["state"]
        location = redirect + ("&" if "?" in redirect else "?") + urllib.parse.urlencode(params)
        raise HttpError(302, "redirect", headers={"Location": location})

    def _user(self) -> str:
        token = self._auth()
        if token.user is None:
            raise HttpError(401, "This endpoint requires a user access token (client credentials have no user)")
        return str(token.user)

    def _route_me(self, query: dict[str, str], body: bytes) -> tuple[int, Any, None]:
        return 200, self.app.catalog.user_object(self._user(), self.app.api_url), None

    def _list_page(self, query: dict[str, str], all_items: list[Any], path: str, max_limit: int = 50) -> dict[str, Any]:
        limit, offset = self._paging_params(query, max_limit, 20)
        base = f"{self.app.api_url}/{path}"
        total = len(all_items)
        return {
            "href": f"{base}?offset={offset}&limit={limit}",
            "items": all_items[offset : offset + limit],
            "limit": limit,
            "offset": offset,
            "total": total,
            "next": f"{base}?offset={offset + limit}&limit={limit}" if offset + limit < total else None,
            "previous": f"{base}?offset={max(0, offset - limit)}&limit={limit}" if offset else None,
        }

    def _route_me_playlists(self, query: dict[str, str], body: bytes) -> tuple[int, Any, None]:
        user, catalog, base = self._user(), self.app.catalog, self.app.api_url
        indices = catalog.user_playlists(user)
        page = self._list_page(query, indices, "me/playlists")
        page["items"] = [catalog.simplified_playlist(i, base) for i in page["items"]]
        return 200, page, None

    def _route_me_tracks(self, query: dict[str, str], body: bytes) -> tuple[int, Any, None]:
        user, catalog, base = self._user(), self.app.catalog, self.app.api_url
        page = self._list_page(query, catalog.saved_tracks(user), "me/tracks")
        page["items"] = [{"added_at": added, "track": catalog.track_full(t, base)} for t, added in page["items"]]
        return 200, page, None

    def _route_recently_played(self, query: dict[str, str], body: bytes) -> tuple[int, Any, None]:
        """The last 50 plays at most (as the real API keeps), newest first, paged by cursor: `after` (ms)
        keeps newer plays, `before` (ms) older ones. A page has `cursors` and a `next` link with
        `before=` while older plays remain; it has no `total`."""
        user, catalog, base = self._user(), self.app.catalog, self.app.api_url
        limit, _ = self._paging_params({"limit": query.get("limit", "20")}, 50, 20)
        if "after" in query and "before" in query:
            raise HttpError(400, "Only one of after and before may be given")
        after, before = (self._millis(query, key) for key in ("after", "before"))
        total = self.app.plays_of(user)
        kept = []  # (millis, play) newest first
        for number in range(total - 1, max(-1, total - 51), -1):
            track, played_at, playlist = catalog.play(user, number)
            kept.append((int(played_at.timestamp() * 1000), track, played_at, playlist))
        if after is not None:
            chosen = [p for p in kept if p[0] > after][-limit:]  # the plays just after the cursor
        else:
            chosen = [p for p in kept if before is None or p[0] < before][:limit]
        plays = []
        for _, track, played_at, playlist in chosen:
            context = None
            if playlist is not None:
                pid = catalog.id_of("playlist", playlist)
                context = {
                    "type": "playlist",
                    "href": f"{base}/playlists/{pid}",
                    "external_urls": {"spotify": f"https://open.spotify.com/playlist/{pid}"},
                    "uri": f"spotify:playlist:{pid}",
                }
            plays.append(
                {
                    "track": catalog.track_full(track, base),
                    "played_at": played_at.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                    "context": context,
                }
            )
        stamps = [p[0] for p in chosen]
        cursors = {"after": str(max(stamps)), "before": str(min(stamps))} if stamps else None
        older = bool(stamps) and any(p[0] < min(stamps) for p in kept)
        url = f"{base}/me/player/recently-played"
        cursor = "".join(f"&{key}={query[key]}" for key in ("after", "before") if key in query)
        page = {
            "href": f"{url}?limit={limit}{cursor}",
            "items": plays,
            "limit": limit,
            "next": f"{url}?before={min(stamps)}&limit={limit}" if older else None,
            "cursors": cursors,
        }
        return 200, page, None

    @staticmethod
    def _millis(query: dict[str, str], key: str) -> int | None:
        if key not in query:
            return None
        if not query[key].isdigit():
            raise HttpError(400, f"Invalid {key} cursor")
        return int(query[key])

    def _route_top(self, query: dict[str, str], body: bytes, kind: str) -> tuple[int, Any, None]:
        user, catalog, base = self._user(), self.app.catalog, self.app.api_url
        time_range = query.get("time_range", "medium_term")
        if time_range not in ("short_term", "medium_term", "long_term"):
            raise HttpError(400, "Invalid time range")
        indices = catalog.top(user, kind, time_range)
        render = catalog.artist_full if kind == "artists" else catalog.track_full
        page = self._list_page(query, indices, f"me/top/{kind}")
        page["items"] = [render(i, base) for i in page["items"]]
        return 200, page, None

    # ---- Web API -------------------------------------------------------------------------------------
    def _auth(self) -> Any:
        return self.app.authenticate(self.headers.get("Authorization"))

    def _index(self, kind: str, spotify_id: str) -> int:
        if not is_base62_id(spotify_id):
            raise HttpError(400, "Invalid base62 id")
        from .ids import decode_id

        index = decode_id(self.app.catalog.config.seed, kind, spotify_id)
        if index is None or index >= self.app.catalog.count(kind):
            raise HttpError(404, "Resource not found")
        return index

    def _can_read_items(self, token: Token, playlist: int) -> bool:
        """Development Mode: items only for playlists the token's user owns or collaborates on."""
        catalog = self.app.catalog
        if catalog.extended:
            return True
        if token.user is None:
            return False
        return catalog.can_edit(token.user, playlist)

    def _paging_params(self, query: dict[str, str], max_limit: int, default: int) -> tuple[int, int]:
        try:
            limit = int(query.get("limit", default))
        except ValueError as exc:
            raise HttpError(400, "Invalid limit") from exc
        try:
            offset = int(query.get("offset", 0))
        except ValueError as exc:
            raise HttpError(400, "Invalid offset") from exc
        if not 1 <= limit <= max_limit:
            raise HttpError(400, "Invalid limit")
        if offset < 0:
            raise HttpError(400, "Invalid offset")
        return limit, offset

    def _items_page(self, playlist: int, offset: int, limit: int, path: str, fields: str | None) -> dict[str, Any]:
        page = self.app.catalog.items_page(playlist, offset, limit, self.app.api_url, path, fields)
        page["items"] = [self._legacy_item(item) for item in page["items"]]
        return page

    def _legacy_item(self, item: dict[str, Any]) -> dict[str, Any]:
        if self.app.legacy_items:
            item.pop("item", None)
        return item

    def _filtered(self, payload: Any, query: dict[str, str]) -> Any:
        if "fields" not in query or not query["fields"]:
            return payload
        try:
            return filter_fields(payload, query["fields"])
        except FieldsSyntaxError as exc:
            raise HttpError(400, f"Invalid fields parameter: {exc}") from exc

    def _route_playlist(self, query: dict[str, str], body: bytes, playlist_id: str) -> tuple[int, Any, list[str]]:
        token = self._auth()
        index = self._index("playlist", playlist_id)
        catalog = self.app.catalog
        payload = catalog.playlist_header(index, self.app.api_url)
        if self.app.legacy_items:
            keys = ["tracks"]
        else:  # `tracks` is the deprecated alias of `items`, left out in the current-names-only shape
            keys = ["items", "tracks"] if catalog.config.items_shape == "both" else ["items"]
        if self._can_read_items(token, index):
            wants_items = "fields" not in query or re.search(r"(^|[,(])!?(items|tracks)\b", query["fields"])
            if wants_items:
                path = "tracks" if self.app.legacy_items else "items"
                page = self._items_page(index, 0, PLAYLIST_ITEMS_MAX_LIMIT, path, None)
                for key in keys:
                    payload[key] = page
        return 200, self._filtered(payload, query), [playlist_id]

    def _route_playlist_items(self, query: dict[str, str], body: bytes, playlist_id: str) -> tuple[int, Any, list[str]]:
        if self.app.legacy_items:
            raise HttpError(404, "Service not found")
        return self._playlist_page(query, playlist_id, "items")

    def _route_playlist_tracks(
        self, query: dict[str, str], body: bytes, playlist_id: str
    ) -> tuple[int, Any, list[str]]:
        if not self.app.catalog.extended and not self.app.legacy_items:
            self._auth()
            raise HttpError(403, "Forbidden")  # deprecated; refused to Development Mode apps since March 2026
        return self._playlist_page(query, playlist_id, "tracks")

    def _playlist_page(self, query: dict[str, str], playlist_id: str, path: str) -> tuple[int, Any, list[str]]:
        token = self._auth()
        index = self._index("playlist", playlist_id)
        if not self._can_read_items(token, index):
            raise HttpError(403, "Forbidden")
        limit, offset = self._paging_params(query, PLAYLIST_ITEMS_MAX_LIMIT, 100)
        page = self._items_page(index, offset, limit, path, query.get("fields"))
        return 200, self._filtered(page, query), [f"{playlist_id}@{offset}"]

    def _single(self, kind: str, spotify_id: str) -> tuple[int, Any, list[str]]:
        self._auth()
        index = self._index(kind, spotify_id)
        render = {
            "artist": self.app.catalog.artist_full,
            "album": self.app.catalog.album_full,
            "track": self.app.catalog.track_full,
        }[kind]
        return 200, render(index, self.app.api_url), [spotify_id]

    def _batch(self, kind: str, query: dict[str, str]) -> tuple[int, Any, list[str]]:
        self._auth()
        plural = f"{kind}s"
        if not self.app.catalog.extended:
            raise HttpError(403, "Forbidden")  # removed for Development Mode apps since Feb 2026
        ids = [i for i in query.get("ids", "").split(",") if i]
        if not ids:
            raise HttpError(400, "invalid id")
        if len(ids) > BATCH_LIMITS[plural]:
            raise HttpError(400, "Too many ids requested")
        render = {
            "artist": self.app.catalog.artist_full,
            "album": self.app.catalog.album_full,
            "track": self.app.catalog.track_full,
        }[kind]
        objects: list[Any] = []
        for spotify_id in ids:
            try:
                objects.append(render(self._index(kind, spotify_id), self.app.api_url))
            except HttpError as err:
                if err.status == 400:
                    raise
                objects.append(None)  # unknown IDs come back as null, in place
        return 200, {plural: objects}, ids

    def _route_artist(self, query: dict[str, str], body: bytes, spotify_id: str) -> tuple[int, Any, list[str]]:
        return self._single("artist", spotify_id)

    def _route_album(self, query: dict[str, str], body: bytes, spotify_id: str) -> tuple[int, Any, list[str]]:
        return self._single("album", spotify_id)

    def _route_track(self, query: dict[str, str], body: bytes, spotify_id: str) -> tuple[int, Any, list[str]]:
        return self._single("track", spotify_id)

    def _route_artists(self, query: dict[str, str], body: bytes) -> tuple[int, Any, list[str]]:
        return self._batch("artist", query)

    def _route_albums(self, query: dict[str, str], body: bytes) -> tuple[int, Any, list[str]]:
        return self._batch("album", query)

    def _route_tracks(self, query: dict[str, str], body: bytes) -> tuple[int, Any, list[str]]:
        return self._batch("track", query)

    def _small_page_params(self, query: dict[str, str]) -> tuple[int, int]:
        default, maximum = SMALL_PAGES[self.app.catalog.config.mode]
        return self._paging_params(query, maximum, default)

    def _offset_page(self, items: list[Any], limit: int, offset: int, url: str, params: str = "") -> dict[str, Any]:
        """An offset paging object over `items`, with links that keep the request's other `params`."""
        total = len(items)

        def link(off: int) -> str:
            return f"{url}?{params}offset={off}&limit={limit}"

        return {
            "href": link(offset),
            "items": items[offset : offset + limit],
            "limit": limit,
            "next": link(offset + limit) if offset + limit < total else None,
            "offset": offset,
            "previous": link(max(0, offset - limit)) if offset else None,
            "total": total,
        }

    def _route_search(self, query: dict[str, str], body: bytes) -> tuple[int, Any, None]:
        """Names containing every word of `q` (field filters such as `artist:` match the name too)."""
        self._auth()
        text = (query.get("q") or query.get("query", "")).strip()  # `next` links spell it `query`, as Spotify's do
        if not text:
            raise HttpError(400, "No search query")
        if not query.get("type"):
            raise HttpError(400, "Missing parameter type")
        kinds = query["type"].split(",")
        if any(kind not in SEARCH_TYPES for kind in kinds):
            raise HttpError(400, "Bad search type field")
        limit, offset = self._small_page_params(query)
        if offset > 1000:
            raise HttpError(400, "Invalid offset")
        words = [w.partition(":")[2] if ":" in w else w for w in text.split()]
        words = [w.strip('"') for w in words if w.strip('"')]
        catalog, base = self.app.catalog, self.app.api_url
        render: dict[str, Callable[[int, str], dict[str, Any]]] = {
            "track": catalog.track_full,
            "album": catalog.album_simplified,
            "artist": catalog.artist_full,
            "playlist": catalog.simplified_playlist,
            "show": catalog.show,
            "episode": functools.partial(catalog.episode, simplified=True),
        }
        params = f"query={urllib.parse.quote(text)}&type={{kind}}&"
        result = {}
        for kind in dict.fromkeys(kinds):
            found = [] if kind == "audiobook" else catalog.search(kind, words)
            page = self._offset_page(found, limit, offset, f"{base}/search", params.format(kind=kind))
            page["items"] = [render[kind](i, base) for i in page["items"]]
            result[f"{kind}s"] = page
        return 200, result, None

    def _route_album_tracks(self, query: dict[str, str], body: bytes, album_id: str) -> tuple[int, Any, list[str]]:
        self._auth()
        album = self._index("album", album_id)
        catalog = self.app.catalog
        limit, offset = self._paging_params(query, 50, 20)
        first = album * 8
        tracks = list(range(first, min(first + 8, catalog.n_tracks)))
        page = self._offset_page(tracks, limit, offset, f"{self.app.api_url}/albums/{album_id}/tracks")
        page["items"] = [catalog.track_simplified(t, self.app.api_url) for t in page["items"]]
        return 200, page, [album_id]

    def _route_artist_albums(self, query: dict[str, str], body: bytes, artist_id: str) -> tuple[int, Any, list[str]]:
        self._auth()
        artist = self._index("artist", artist_id)
        catalog, base = self.app.catalog, self.app.api_url
        groups = [g for g in query.get("include_groups", "").split(",") if g]
        if any(g not in ("album", "single", "appears_on", "compilation") for g in groups):
            raise HttpError(400, "Invalid include_groups")
        limit, offset = self._small_page_params(query)
        albums = []
        for album in catalog.artist_albums(artist):
            obj = catalog.album_simplified(album, base)
            obj["album_group"] = obj["album_type"]  # a release of the artist's own: its group is its type
            if not groups or obj["album_group"] in groups:
                albums.append(obj)
        params = f"include_groups={','.join(groups)}&" if groups else ""
        return 200, self._offset_page(albums, limit, offset, f"{base}/artists/{artist_id}/albums", params), [artist_id]

    def _route_library_contains(self, query: dict[str, str], body: bytes) -> tuple[int, Any, None]:
        """Whether each URI is in the user's library: liked tracks and the playlists in it."""
        user, catalog = self._user(), self.app.catalog
        uris = [u for u in query.get("uris", "").split(",") if u]
        if not uris:
            raise HttpError(400, "Missing required parameter: uris")
        if len(uris) > LIBRARY_CONTAINS_MAX:
            raise HttpError(400, "Too many ids requested")
        liked = {catalog.id_of("track", t) for t, _ in catalog.saved_tracks(user)}
        playlists = {catalog.id_of("playlist", p) for p in catalog.user_playlists(user)}
        answers = []
        for uri in uris:
            scheme, kind, spotify_id = [*uri.split(":"), "", ""][:3]
            if scheme != "spotify" or not is_base62_id(spotify_id) or uri.count(":") != 2:
                raise HttpError(400, f"Invalid URI: {uri}")
            answers.append(spotify_id in {"track": liked, "playlist": playlists}.get(kind, set()))
        return 200, answers, None

    # ---- admin ---------------------------------------------------------------------------------------
    def _json_body(self, body: bytes) -> dict[str, Any]:
        try:
            data = json.loads(body or b"{}")
        except ValueError as exc:
            raise HttpError(400, "body is not JSON") from exc
        if not isinstance(data, dict):
            raise HttpError(400, "body must be a JSON object")
        return data

    def _route_admin_stats(self, query: dict[str, str], body: bytes) -> tuple[int, Any, None]:
        return 200, self.app.stats.as_dict(), None

    def _route_admin_faults(self, query: dict[str, str], body: bytes) -> tuple[int, Any, None]:
        data = self._json_body(body)
        if data.get("clear"):
            self.app.faults.clear()
        plan = self.app.faults
        for key in ("latency_ms", "rate_limit", "rate_window_s", "error_rate", "drop_rate"):
            if key in data:
                setattr(plan, key, type(getattr(plan, key))(data[key]))
        for spec in data.get("faults", []):
            plan.add(Fault(**spec))
        return 200, {"ok": True}, None

    def _route_admin_mutate(self, query: dict[str, str], body: bytes) -> tuple[int, Any, None]:
        data = self._json_body(body)
        count = self.app.catalog.config.playlists
        indices = [int(i) for i in data.get("playlists", [])]
        if "fraction" in data:
            step = max(1, round(1 / float(data["fraction"])))
            indices += list(range(0, count, step))
        self.app.mutate(sorted({i for i in indices if 0 <= i < count}))
        return 200, {"mutated": len(indices)}, None

    def _route_admin_plays(self, query: dict[str, str], body: bytes) -> tuple[int, Any, None]:
        data = self._json_body(body)
        self.app.add_plays(str(data.get("user", self.app.login_user)), int(data.get("count", 1)))
        return 200, {"ok": True}, None

    def _route_admin_revoke(self, query: dict[str, str], body: bytes) -> tuple[int, Any, None]:
        self.app.revoke_refresh_tokens()
        return 200, {"ok": True}, None

    def _route_admin_expire(self, query: dict[str, str], body: bytes) -> tuple[int, Any, None]:
        self.app.expire_tokens()
        return 200, {"ok": True}, None

    def _route_admin_expire_login(self, query: dict[str, str], body: bytes) -> tuple[int, Any, None]:
        self.app.expire_logins()
        return 200, {"ok": True}, None


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
