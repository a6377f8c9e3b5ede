"""HTTP hardening for `serve`: which Host names are this server's (loopback names, wildcard addresses, IP
literals) and the Content-Security-Policy every answer carries (see dashboard.py's docstring for the whole list)."""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import re

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


def is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True
