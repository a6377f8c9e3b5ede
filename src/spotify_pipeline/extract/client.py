"""The HTTP client: auth, a shared rate limiter, retries with backoff, and a bounded wait on 429.

Built on httpx (a maintained HTTP library with connection pooling, timeouts and a thread-safe sync client).
"""

from __future__ import annotations

import collections
import datetime as dt
import json
import logging
import re
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from ..errors import ApiError, AuthError, ResponseError, RetryWaitTooLong
from .auth import Auth
from .ratelimit import RateLimiter
from .retry import RetryPolicy, parse_retry_after

log = logging.getLogger(__name__)

_ENDPOINTS = [
    (re.compile(r"^/playlists/[^/]+$"), "playlist"),
    (re.compile(r"^/playlists/[^/]+/items$"), "playlist_items"),
    (re.compile(r"^/playlists/[^/]+/tracks$"), "playlist_tracks"),
    (re.compile(r"^/(artists|albums|tracks)$"), "{0}"),
    (re.compile(r"^/(artist|album|track)s/[^/]+$"), "{0}"),
]


def endpoint_of(path: str) -> str:
    """A short name for the endpoint behind an API path, for request statistics."""
    for pattern, name in _ENDPOINTS:
        match = pattern.match(path)
        if match:
            return name.format(*match.groups())
    return "other"


@dataclass(frozen=True)
class ApiResponse:
    """One successful response: the body exactly as received, parsed, and where it came from."""

    url: str
    status: int
    body: bytes
    data: Any
    fetched_at: dt.datetime
    endpoint: str


@dataclass
class ClientStats:
    requests: collections.Counter[str] = field(default_factory=collections.Counter)
    retries: int = 0
    rate_limited: int = 0
    server_errors: int = 0
    connection_errors: int = 0
    malformed: int = 0
    token_refreshes: int = 0
    waited_s: float = 0.0

    @property
    def total_requests(self) -> int:
        return sum(self.requests.values())

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests": dict(self.requests),
            "total_requests": self.total_requests,
            "retries": self.retries,
            "rate_limited": self.rate_limited,
            "server_errors": self.server_errors,
            "connection_errors": self.connection_errors,
            "malformed": self.malformed,
            "token_refreshes": self.token_refreshes,
            "waited_s": round(self.waited_s, 3),
        }


class RequestCancelled(Exception):
    """A request not sent, or a wait cut short, because the run is stopping (`SpotifyClient.cancel`)."""


class SpotifyClient:
    """GET requests against the Web API. Thread-safe; one instance serves every worker of a run."""

    def __init__(
        self,
        api_url: str,
        auth: Auth,
        *,
        policy: RetryPolicy | None = None,
        limiter: RateLimiter | None = None,
        concurrency: int = 8,
        timeout: float = 30.0,
        sleep: Callable[[float], None] | None = None,
        on_retry: Callable[[str], None] | None = None,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        self.api_url = api_url.rstrip("/")
        self._api_path = urllib.parse.urlsplit(self.api_url).path
        self.auth = auth
        self.policy = policy or RetryPolicy()
        self.limiter = limiter or RateLimiter(0)
        self.stats = ClientStats()
        self._cancelled = threading.Event()
        self._sleep = sleep or self._sleep_unless_cancelled
        self._on_retry = on_retry
        self._clock = clock
        self._lock = threading.Lock()
        self._paused_until = 0.0
        self.http = httpx.Client(
            timeout=timeout,
            limits=httpx.Limits(max_connections=concurrency + 2, max_keepalive_connections=concurrency + 2),
            headers={"Accept": "application/json", "User-Agent": "spotify-pipeline"},
        )

    def close(self) -> None:
        self.http.close()

    def cancel(self) -> None:
        """The run is stopping (Ctrl-C): no new request starts, and a worker backing off or waiting out a 429
        stops waiting (`RequestCancelled`). A request already sent finishes, bounded by the timeout."""
        self._cancelled.set()

    def _sleep_unless_cancelled(self, seconds: float) -> None:
        if self._cancelled.wait(seconds):
            raise RequestCancelled("the run is stopping")

    def __enter__(self) -> SpotifyClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def url_for(self, path_or_url: str, params: dict[str, Any] | None = None) -> str:
        url = path_or_url if "://" in path_or_url else f"{self.api_url}/{path_or_url.lstrip('/')}"
        if params:
            url += ("&" if "?" in url else "?") + urllib.parse.urlencode(params, safe=",()!")
        return url

    def _endpoint(self, url: str) -> str:
        path = urllib.parse.urlsplit(url).path
        return endpoint_of(path.removeprefix(self._api_path))

    def _count(self, attr: str, endpoint: str | None = None) -> None:
        with self._lock:
            if endpoint is not None:
                self.stats.requests[endpoint] += 1
            else:
                setattr(self.stats, attr, getattr(self.stats, attr) + 1)

    def _wait(self, seconds: float) -> None:
        if seconds > 0:
            with self._lock:
                self.stats.waited_s += seconds
            self._sleep(seconds)

    def _pause_all(self, seconds: float) -> None:
        """A 429 pauses every worker, not just the one that saw it."""
        with self._lock:
            self._paused_until = max(self._paused_until, time.monotonic() + seconds)

    def _retry(self, kind: str, url: str, attempt: int, delay: float) -> None:
        self._count("retries")
        log.info("retry %d after %s in %.2fs: %s", attempt, kind, delay, url)
        if self._on_retry:
            self._on_retry(kind)
        self._wait(delay)

    def _retry_or_give_up(self, stat: str, kind: str, url: str, failures: int, error: ApiError) -> None:
        """One more retriable failure (5xx, connection, malformed body): raise `error` once the retry budget
        is spent, otherwise back off with jitter."""
        self._count(stat)
        if failures > self.policy.max_retries:
            raise error
        self._retry(kind, url, failures, self.policy.backoff(failures))

    def get(self, path_or_url: str, params: dict[str, Any] | None = None) -> ApiResponse:
        """GET and parse JSON, retrying what is retriable; raises an `ApiError` for what is not."""
        url = self.url_for(path_or_url, params)
        endpoint = self._endpoint(url)
        failures = 0  # 5xx, connection errors, malformed bodies
        throttles = 0  # 429s
        refreshed = False
        while True:
            if self._cancelled.is_set():
                raise RequestCancelled("the run is stopping")
            pause = self._paused_until - time.monotonic()
            self._wait(pause)
            self.limiter.acquire()
            header = self.auth.header(self.http)
            try:
                response = self.http.get(url, headers={"Authorization": header})
            except httpx.TransportError as exc:
                failures += 1
                self._retry_or_give_up(
                    "connection_errors",
                    type(exc).__name__,
                    url,
                    failures,
                    ApiError(
                        f"connection to {url} failed {failures} times ({type(exc).__name__})",
                        url=url,
                        retriable=True,
                        hint="check the network and SPOTIFY_API_URL, then re-run",
                    ),
                )
                continue
            self._count("", endpoint)
            status = response.status_code
            if status == 200:
                body = response.content
                try:
                    data = json.loads(body)
                except ValueError:
                    failures += 1
                    self._retry_or_give_up(
                        "malformed",
                        "malformed body",
                        url,
                        failures,
                        ResponseError(
                            f"malformed JSON from {url} ({len(body)} bytes)",
                            status=200,
                            url=url,
                            hint="the server may be failing; re-run later",
                        ),
                    )
                    continue
                return ApiResponse(url, status, body, data, self._clock(), endpoint)
            message, reason = _error_message(response)
            if status == 401 and "expired" in message.lower() and not refreshed:
                refreshed = True
                self._count("token_refreshes")
                self.auth.invalidate(header)
                continue
            if status == 401:
                raise AuthError(
                    f"Spotify refused the access token: {message}",
                    status=401,
                    url=url,
                    hint="check the client credentials",
                )
            if status == 429:
                self._count("rate_limited")
                throttles += 1
                retry_after = parse_retry_after(response.headers.get("Retry-After"))
                wait = retry_after if retry_after is not None else self.policy.backoff(throttles)
                quota = reason == "QUOTA_EXCEEDED"
                if wait > self.policy.max_retry_wait or throttles > self.policy.max_retries * 4:
                    resume = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=wait)
                    what = "the app's quota is exceeded (QUOTA_EXCEEDED)" if quota else "rate limited"
                    raise RetryWaitTooLong(
                        f"{what}: Spotify asks to wait {wait:.0f}s, more than --max-retry-wait "
                        f"{self.policy.max_retry_wait:.0f}s; everything extracted so far is kept, "
                        f"retry after {resume:%Y-%m-%d %H:%M:%S} UTC",
                        retry_after=wait,
                        quota_exceeded=quota,
                        url=url,
                    )
                self._pause_all(wait)
                # This worker sleeps out the pause itself, so the log says how long the pause is.
                self._retry("429", url, throttles, max(0.0, self._paused_until - time.monotonic()))
                continue
            if status in self.policy.statuses:
                failures += 1
                self._retry_or_give_up(
                    "server_errors",
                    f"HTTP {status}",
                    url,
                    failures,
                    ApiError(
                        f"HTTP {status} from {url} after {failures} attempts: {message}",
                        status=status,
                        url=url,
                        retriable=True,
                        hint="the API is failing; re-run later",
                    ),
                )
                continue
            raise ApiError(f"HTTP {status} from {url}: {message}", status=status, url=url)


def _error_message(response: httpx.Response) -> tuple[str, str | None]:
    try:
        error = response.json().get("error")
    except (ValueError, AttributeError):
        return response.reason_phrase or f"HTTP {response.status_code}", None
    if isinstance(error, dict):
        return str(error.get("message", "")), error.get("reason")
    return str(error or ""), None
