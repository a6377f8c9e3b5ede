"""Authentication, pluggable: client credentials now; user tokens (PKCE) plug in behind the same protocol."""

from __future__ import annotations

import threading
import time
from typing import Protocol

import httpx

from ..config import Secret
from ..errors import AuthError, TokenUnavailable

REFRESH_MARGIN_S = 60.0
# A token request that fails for a retriable reason (unreachable, 5xx) is tried this many times, backing off
# 0.5 s, 1 s, ...; a failure after that is remembered for FAILURE_MEMORY_S, so the run's other workers stop
# at once instead of each trying again (the run stops at the first: every request needs a token).
TOKEN_ATTEMPTS = 3
FAILURE_MEMORY_S = 10.0


class Auth(Protocol):
    def header(self, http: httpx.Client) -> str:
        """The Authorization header value, fetching or refreshing the token as needed."""

    def invalidate(self, header: str) -> None:
        """Forget the token behind `header` (after a 401 `The access token expired`)."""


class ClientCredentialsAuth:
    """OAuth client-credentials flow. The token lives in memory only; it is never written anywhere."""

    def __init__(self, accounts_url: str, client_id: str, client_secret: Secret, timeout: float = 30.0) -> None:
        self.token_url = accounts_url.rstrip("/") + "/api/token"
        self.client_id = client_id
        self._secret = client_secret
        self._timeout = timeout
        self._token: str | None = None
        self._refresh_at = 0.0
        self._lock = threading.Lock()
        self._failure: tuple[float, TokenUnavailable] | None = None
        self.tokens_fetched = 0

    def header(self, http: httpx.Client) -> str:
        with self._lock:
            if self._token is None or time.monotonic() >= self._refresh_at:
                self._fetch_retrying(http)
            return f"Bearer {self._token}"

    def _fetch_retrying(self, http: httpx.Client) -> None:
        if self._failure is not None and time.monotonic() - self._failure[0] < FAILURE_MEMORY_S:
            raise self._failure[1]
        for attempt in range(TOKEN_ATTEMPTS):
            try:
                self._fetch(http)
            except TokenUnavailable as exc:
                if not exc.retriable or attempt == TOKEN_ATTEMPTS - 1:
                    self._failure = (time.monotonic(), exc)
                    raise
                time.sleep(0.5 * 2**attempt)
            else:
                self._failure = None
                return

    def invalidate(self, header: str) -> None:
        with self._lock:
            if header == f"Bearer {self._token}":
                self._token = None

    def _fetch(self, http: httpx.Client) -> None:
        try:
            response = http.post(
                self.token_url,
                data={"grant_type": "client_credentials"},
                auth=(self.client_id, self._secret.reveal()),
                timeout=self._timeout,
            )
        except httpx.TransportError as exc:
            raise TokenUnavailable(
                f"cannot reach the Spotify accounts service at {self.token_url}: {type(exc).__name__}",
                url=self.token_url,
                retriable=True,
                hint="check the network or SPOTIFY_ACCOUNTS_URL",
            ) from exc
        if response.status_code in (400, 401):
            error = _error_code(response)
            raise AuthError(
                f"Spotify rejected the client credentials ({error})",
                status=response.status_code,
                url=self.token_url,
                hint="check SPOTIFY_CLIENT_ID and SPOTIFY_CLIENT_SECRET in your app's dashboard",
            )
        if response.status_code != 200:
            raise TokenUnavailable(
                f"the Spotify accounts service failed the token request with HTTP {response.status_code}",
                status=response.status_code,
                url=self.token_url,
                retriable=response.status_code >= 500,
            )
        try:
            data = response.json()
            token, expires_in = str(data["access_token"]), float(data.get("expires_in", 3600))
        except (ValueError, KeyError, TypeError) as exc:
            raise AuthError(
                "the token response is not what the accounts service documents", url=self.token_url
            ) from exc
        self._token = token
        # Refresh a little before expiry (a tenth of the lifetime, at most a minute) to avoid a wasted 401.
        self._refresh_at = time.monotonic() + expires_in - min(REFRESH_MARGIN_S, expires_in / 10)
        self.tokens_fetched += 1


def _error_code(response: httpx.Response) -> str:
    try:
        return str(response.json().get("error", "unknown error"))
    except ValueError:
        return f"HTTP {response.status_code}"


class StaticTokenAuth:
    """An access token obtained elsewhere (a user token from a login flow, a test). Not refreshed."""

    def __init__(self, token: Secret) -> None:
        self._token = token

    def header(self, http: httpx.Client) -> str:
        return f"Bearer {self._token.reveal()}"

    def invalidate(self, header: str) -> None:
        return None
