"""The accounts service of the simulated API: `POST /api/token` (client credentials, authorization code
with PKCE, refresh) and `GET /authorize` (the user login redirect)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import secrets
import time
import urllib.parse
from typing import Any

from .handler import TOKEN_TYPE, HandlerBase, HttpError


class AccountRoutes(HandlerBase):
    """`/api/token` and `/authorize`."""

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
