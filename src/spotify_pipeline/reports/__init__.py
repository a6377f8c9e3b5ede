"""Named reports: one portable SQL file each (title and description in its header), runnable by name.

The SQL sticks to what DuckDB and Athena (Trino) both accept. Parameters are written `{{name}}` and replaced
by validated SQL literals, never by the text given: `playlist` (a quoted playlist ID, or NULL = every
playlist) for the playlist reports; `user`, `from`, `to`, `period`, `by` and `include_incognito` for the
listening reports (see `listening_params`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources

from ..errors import InputError
from ..ids import parse_playlist_ref
from ..query import QueryEngine, QueryResult
from .params import LISTENING_PARAMS, listening_literals

PLAYLIST_PARAMS = ("playlist",)
PARAMS = PLAYLIST_PARAMS + LISTENING_PARAMS


@dataclass(frozen=True)
class Report:
    name: str
    title: str
    description: str
    sql: str

    def render(self, params: dict[str, str] | None = None) -> str:
        """The SQL with parameters filled in."""
        params = dict(params or {})
        unknown = set(params) - set(PARAMS)
        if unknown:
            raise InputError(
                f"unknown report parameter(s): {', '.join(sorted(unknown))}", hint=f"reports take: {', '.join(PARAMS)}"
            )
        unused = sorted(p for p in params if p in LISTENING_PARAMS and "{{" + p + "}}" not in self.sql)
        if unused:
            raise InputError(f"report {self.name} takes no {', '.join(unused)}", hint="see `report --list`")
        playlist = params.get("playlist")
        value = "NULL" if not playlist else f"'{parse_playlist_ref(playlist)}'"  # base62 only: safe to quote
        sql = self.sql.replace("{{playlist}}", value)
        for key, literal in listening_literals(params).items():
            sql = sql.replace("{{" + key + "}}", literal)
        return sql


def _parse(name: str, text: str) -> Report:
    header = dict(re.findall(r"^-- (\w+): (.*)$", text, flags=re.MULTILINE))
    body = "\n".join(line for line in text.splitlines() if not line.startswith("-- ")).strip()
    return Report(name, header.get("title", name), header.get("description", ""), body)


def all_reports() -> dict[str, Report]:
    """Every report shipped in this package, by name, in a stable order."""
    folder = resources.files(__package__)
    reports = {}
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".sql"):
            name = entry.name.removesuffix(".sql")
            reports[name] = _parse(name, entry.read_text(encoding="utf-8"))
    return reports


REPORT_ORDER = (
    "top_artists",
    "genre_mix",
    "release_decades",
    "song_length",
    "popularity_distribution",
    "popularity_trend",
    "playlist_growth",
    "playlist_changes",
    "artist_overlap",
    "data_health",
    "recommendations",
)

# Reports over `listens` (imported history and recently played), in the order the listening page shows them.
LISTENING_ORDER = (
    "listening_time",
    "top_listened_artists",
    "top_listened_songs",
    "top_listened_albums",
    "listening_heatmap",
    "skip_rate",
    "new_artists",
)


def get_report(name: str) -> Report:
    reports = all_reports()
    if name not in reports:
        raise InputError(f"no report named {name!r}", hint=f"reports: {', '.join(reports)}")
    return reports[name]


def run_report(engine: QueryEngine, name: str, params: dict[str, str] | None = None) -> QueryResult:
    return engine.execute(get_report(name).render(params))
