"""User login: OAuth 2.0 Authorization Code with PKCE, a one-shot loopback callback, and the saved login.

The refresh token is the only thing kept: in `credentials.json` under the user's config folder, created
with mode 0600 and replaced atomically. Access tokens live in memory. A rotated refresh token is saved; a
revoked or expired one (Spotify's refresh tokens live 6 months from the login; refreshing does not extend
them) answers `invalid_grant`, which is not retried: one line says to run `spotify-pipeline login` again.
A refresh answer without a refresh token leaves the saved one as it is.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import hashlib
import json
import os
import secrets
import tempfile
import threading
import time
import urllib.parse
import webbrowser
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import httpx

from ..config import Secret
from ..errors import AuthError, ConfigError

SCOPES = (
    "playlist-read-private",
    "playlist-read-collaborative",
    "user-library-read",
    "user-read-recently-played",
    "user-top-read",
)
REFRESH_MARGIN_S = 60.0
LOGIN_EXPIRED = "your Spotify login has expired or was revoked; run `spotify-pipeline login` again"


def pkce_pair() -> tuple[str, str]:
    """(code_verifier, S256 code_challenge) as RFC 7636 describes."""
    verifier = secrets.token_urlsafe(64)[:96]
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def config_dir(environ: dict[str, str] | os._Environ[str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    if env.get("SPOTIFY_PIPELINE_CONFIG_DIR"):
        return Path(env["SPOTIFY_PIPELINE_CONFIG_DIR"])
    base = Path(env["XDG_CONFIG_HOME"]) if env.get("XDG_CONFIG_HOME") else Path.home() / ".config"
    return base / "spotify-pipeline"


@dataclass
class SavedLogin:
    client_id: str
    accounts_url: str
    refresh_token: Secret
    scope: str
    user_id: str | None = None


class TokenStore:
    """The saved login, in a file only its owner can read."""

    def __init__(self, folder: Path | None = None) -> None:
        self.path = (folder or config_dir()) / "credentials.json"

    def load(self) -> SavedLogin | None:
        if not self.path.exists():
            return None
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            return SavedLogin(
                data["client_id"],
                data["accounts_url"],
                Secret(data["refresh_token"]),
                data.get("scope", ""),
                data.get("user_id"),
            )
        except (OSError, ValueError, KeyError) as exc:
            raise ConfigError(
                f"the saved login {self.path} is unreadable", hint="run `spotify-pipeline login` again"
            ) from exc

    def save(self, login: SavedLogin) -> None:
        data = {
            "client_id": login.client_id,
            "accounts_url": login.accounts_url,
            "refresh_token": login.refresh_token.reveal(),
            "scope": login.scope,
            "user_id": login.user_id,
            "saved_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        }
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".credentials.", suffix=".tmp")
            try:
                os.fchmod(fd, 0o600)
                with os.fdopen(fd, "w", encoding="utf-8") as handle:
                    json.dump(data, handle)
                os.replace(tmp, self.path)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
        except OSError as exc:
            raise ConfigError(
                f"cannot save the login to {self.path}: {exc.strerror}",
                hint="set SPOTIFY_PIPELINE_CONFIG_DIR to a writable folder",
            ) from exc

    def delete(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


class SecretsManagerTokenStore(TokenStore):
    """The saved login in an AWS Secrets Manager secret (on Lambda): same JSON as the file; a rotated
    refresh token is written back as a new version of the secret."""

    def __init__(self, secret_id: str, client: Any = None) -> None:
        import boto3

        from ..lake.s3 import aws_endpoint

        self.secret_id = secret_id
        self.path = Path(f"secretsmanager:{secret_id}")
        self.client = client or boto3.client("secretsmanager", endpoint_url=aws_endpoint())

    def load(self) -> SavedLogin | None:
        from botocore.exceptions import ClientError

        try:
            data = json.loads(self.client.get_secret_value(SecretId=self.secret_id)["SecretString"])
        except ClientError as exc:
            raise ConfigError(
                f"cannot read the login secret {self.secret_id}: {exc.response['Error']['Code']}",
                hint="check the secret's name and the function's permissions",
            ) from exc
        if not data.get("refresh_token"):
            return None
        return SavedLogin(
            data["client_id"],
            data.get("accounts_url", "https://accounts.spotify.com"),
            Secret(data["refresh_token"]),
            data.get("scope", ""),
            data.get("user_id"),
        )

    def save(self, login: SavedLogin) -> None:
        current = json.loads(self.client.get_secret_value(SecretId=self.secret_id)["SecretString"])
        current.update(
            client_id=login.client_id,
            accounts_url=login.accounts_url,
            refresh_token=login.refresh_token.reveal(),
            scope=login.scope,
        )
        self.client.put_secret_value(SecretId=self.secret_id, SecretString=json.dumps(current))

    def delete(self) -> None:
        raise ConfigError("the login secret is managed in AWS", hint="remove refresh_token from the secret")


class UserAuth:
    """Access tokens for the logged-in user, refreshed from the saved refresh token (saved again if rotated)."""

    def __init__(self, store: TokenStore, login: SavedLogin, timeout: float = 30.0) -> None:
        self.store = store
        self.login = login
        self.timeout = timeout
        self._token: str | None = None
        self._refresh_at = 0.0
        self._lock = threading.Lock()

    def header(self, http: httpx.Client) -> str:
        with self._lock:
            if self._token is None or time.monotonic() >= self._refresh_at:
                self._refresh(http)
            return f"Bearer {self._token}"

    def invalidate(self, header: str) -> None:
        with self._lock:
            if header == f"Bearer {self._token}":
                self._token = None

    def _refresh(self, http: httpx.Client) -> None:
        url = self.login.accounts_url.rstrip("/") + "/api/token"
        form = {
            "grant_type": "refresh_token",
            "refresh_token": self.login.refresh_token.reveal(),
            "client_id": self.login.client_id,
        }
        data = _token_request(http, url, form, self.timeout)
        self._token = str(data["access_token"])
        expires_in = float(data.get("expires_in", 3600))
        self._refresh_at = time.monotonic() + expires_in - min(REFRESH_MARGIN_S, expires_in / 10)
        # Rotated: the old one no longer works, save the new one. Absent (Spotify's usual answer): keep ours.
        if data.get("refresh_token"):
            self.login.refresh_token = Secret(str(data["refresh_token"]))
            self.store.save(self.login)


def _token_request(http: httpx.Client, url: str, form: dict[str, str], timeout: float) -> dict[str, Any]:
    try:
        response = http.post(url, data=form, timeout=timeout)
    except httpx.TransportError as exc:
        raise AuthError(
            f"cannot reach the Spotify accounts service at {url}: {type(exc).__name__}",
            url=url,
            retriable=True,
            hint="check the network, then retry",
        ) from exc
    try:
        data = response.json()
    except ValueError:
        data = {}
    if response.status_code != 200 or "access_token" not in data:
        error = data.get("error", f"HTTP {response.status_code}") if isinstance(data, dict) else "bad response"
        description = data.get("error_description", "") if isinstance(data, dict) else ""
        if error == "invalid_grant" and form["grant_type"] == "refresh_token":
            # Expired (6 months after the login) or revoked: final, never retried.
            raise AuthError(LOGIN_EXPIRED, status=400, url=url)
        raise AuthError(
            f"Spotify refused the token request: {error} {description}".strip(),
            status=response.status_code,
            url=url,
            hint="run `spotify-pipeline login` again",
        )
    return dict(data)


class _Callback(BaseHTTPRequestHandler):
    result: dict[str, str]
    done: threading.Event

    def do_GET(self) -> None:
        parsed = urllib.parse.urlsplit(self.path)
        if parsed.path != "/callback":
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.result.update({k: v[-1] for k, v in urllib.parse.parse_qs(parsed.query).items()})
        ok = "code" in self.result
        page = (
            b"<h1>Logged in.</h1><p>You can close this tab and return to the terminal.</p>"
            if ok
            else b"<h1>Login failed.</h1><p>See the terminal.</p>"
        )
        self.send_response(200 if ok else 400)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(page)))
        self.end_headers()
        self.wfile.write(page)
        self.done.set()

    def log_message(self, format: str, *args: Any) -> None:
        return


def login(
    accounts_url: str,
    client_id: str,
    store: TokenStore,
    *,
    port: int = 0,
    open_browser: bool = True,
    show_url: Callable[[str], None] = print,
    timeout: float = 300.0,
    http: httpx.Client | None = None,
) -> SavedLogin:
    """Run the whole PKCE login: authorize in a browser, catch the loopback callback, exchange, save."""
    if not client_id:
        raise ConfigError("no client ID", hint="set SPOTIFY_CLIENT_ID to your app's client ID")
    verifier, challenge = pkce_pair()
    state = secrets.token_urlsafe(16)
    done = threading.Event()
    result: dict[str, str] = {}
    handler = type("Callback", (_Callback,), {"result": result, "done": done})
    try:
        server = HTTPServer(("127.0.0.1", port), handler)
    except OSError as exc:
        raise ConfigError(
            f"cannot listen on 127.0.0.1:{port} for the login callback: {exc.strerror}",
            hint="pick another --port (and register that redirect URI in your app)",
        ) from exc
    redirect_uri = f"http://127.0.0.1:{server.server_address[1]}/callback"
    query = urllib.parse.urlencode(
        {
            "client_id": client_id,
            "response_type": "code",
            "redirect_uri": redirect_uri,
            "code_challenge_method": "S256",
            "code_challenge": challenge,
            "state": state,
            "scope": " ".join(SCOPES),
        }
    )
    url = f"{accounts_url.rstrip('/')}/authorize?{query}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        show_url(url)
        if open_browser:
            webbrowser.open(url)
        if not done.wait(timeout):
            raise AuthError(f"no login callback within {timeout:.0f}s", hint="run `spotify-pipeline login` again")
    finally:
        server.shutdown()
        server.server_close()
    if "error" in result:
        raise AuthError(f"the login was refused: {result['error']}", hint="approve the app, or check its settings")
    if not secrets.compare_digest(result.get("state", ""), state):
        raise AuthError("the login callback's state does not match (possible CSRF)", hint="log in again")
    client = http or httpx.Client()
    try:
        data = _token_request(
            client,
            f"{accounts_url.rstrip('/')}/api/token",
            {
                "grant_type": "authorization_code",
                "code": result["code"],
                "redirect_uri": redirect_uri,
                "client_id": client_id,
                "code_verifier": verifier,
            },
            30.0,
        )
    finally:
        if http is None:
            client.close()
    if not data.get("refresh_token"):
        raise AuthError("the accounts service returned no refresh token", hint="log in again")
    saved = SavedLogin(client_id, accounts_url, Secret(str(data["refresh_token"])), str(data.get("scope", "")))
    store.save(saved)
    return saved
