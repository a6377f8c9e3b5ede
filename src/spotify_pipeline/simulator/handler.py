"""What every route of the simulated API shares: the request handler's plumbing (answers, faults,
dropped connections, bearer tokens, paging parameters), `HttpError`, and the token type and test credentials."""

from __future__ import annotations

import contextlib
import json
import socket
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any

from .faults import Fault

if TYPE_CHECKING:
    from .server import SimulatedSpotify, _Server

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
class Token:
    expires_at: float
    user: str | None  # None for client credentials: no user behind the token


class HandlerBase(BaseHTTPRequestHandler):
    """The plumbing the route families (`routes_*.py`) build on; `server._Handler` combines them."""

    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        return  # quiet: the stats say what happened

    @property
    def app(self) -> SimulatedSpotify:
        return self.server.app

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

    def _auth(self) -> Any:
        return self.app.authenticate(self.headers.get("Authorization"))

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
