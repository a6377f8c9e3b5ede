"""The admin routes of the simulated API (`/_admin/...`): tests and benchmarks script faults, change
playlists, add plays, revoke or expire tokens and read the stats."""

from __future__ import annotations

import json
from typing import Any

from .faults import Fault
from .handler import HandlerBase, HttpError


class AdminRoutes(HandlerBase):
    """`/_admin/...`."""

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
