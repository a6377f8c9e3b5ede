"""GraphQL over the lake, served by `serve` at `/graphql` beside the JSON API (graphql-core, the reference
implementation). Read-only by construction: the schema has no mutations and no subscriptions, and every
resolver runs one parameterised SELECT through the dashboard's sandboxed `QueryEngine`.

Hostile queries are refused before anything runs:
- at most `MAX_QUERY_CHARS` of query text;
- at most `MAX_DEPTH` levels of fields (introspection's `__schema`/`__type` subtrees aside, whose
  fields still count towards the cost);
- a cost of at most `MAX_COST`: every field costs 1, and a paged field multiplies what it selects by the
  page size it asks for (`first`, at most `MAX_PAGE`), so `playlists(first: 100) { nodes { songs(first:
  100) { ... } } }` is refused however few rows the lake has; aliases are fields and count the same.

The schema (SDL) and those limits are in `graphql_schema.py`; `spotify-pipeline graphql-schema` prints the
schema.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from graphql import (
    ExecutionResult,
    GraphQLError,
    OperationDefinitionNode,
    execute,
    parse,
    validate,
)

from ..errors import PipelineError
from ..ids import parse_playlist_ref
from ..query.engine import QueryEngine, QueryResult, result_rows
from ..reports import REPORT_ORDER, all_reports, run_report
from ..reports.charts import CHARTS
from .graphql_schema import DEFAULT_PAGE, MAX_PAGE, MAX_QUERY_CHARS, SCHEMA, check_limits

Runner = Callable[[Callable[[QueryEngine], QueryResult]], QueryResult]


# --- resolvers ---------------------------------------------------------------------------------------


def _page_args(first: int, offset: int) -> tuple[int, int]:
    if not 1 <= first <= MAX_PAGE:
        raise GraphQLError(f"`first` must be between 1 and {MAX_PAGE}")
    if offset < 0:
        raise GraphQLError("`offset` must not be negative")
    return first, offset


def _like(text: str) -> str:
    """`text` as a literal ILIKE pattern: its own % _ and \\ escaped."""
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def _id(value: str, what: str) -> str:
    if not value.isalnum() or not value.isascii() or len(value) > 64:
        raise GraphQLError(f"not a Spotify {what} id: {value!r}")
    return value


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


class Resolvers:
    """The field resolvers, over a `run(fn)` that gives `fn` the sandboxed engine (under the dashboard's lock)."""

    def __init__(self, run: Runner) -> None:
        self.run = run

    def rows(self, sql: str, params: list[Any]) -> list[dict[str, Any]]:
        result = self.run(lambda e: e.execute(sql, params))
        return [{_camel(k): v for k, v in row.items()} for row in result_rows(result)]

    def page(
        self, select: str, where: list[str], params: list[Any], order: str, first: int, offset: int, make: Any
    ) -> dict[str, Any]:
        first, offset = _page_args(first, offset)
        clause = (" WHERE " + " AND ".join(where)) if where else ""
        total = self.run(lambda e: e.execute(f"SELECT count(*) FROM ({select}{clause}) t", params)).rows[0][0]
        rows = self.rows(f"{select}{clause} ORDER BY {order} LIMIT {first} OFFSET {offset}", params)
        return {
            "pageInfo": {"total": total, "offset": offset, "hasNextPage": offset + len(rows) < total},
            "nodes": [make(r) for r in rows],
        }

    # objects: plain dicts, with callables for the fields that take arguments or need another query

    def playlist(self, row: dict[str, Any]) -> dict[str, Any]:
        pid = row["id"]
        return {
            **row,
            "url": f"https://open.spotify.com/playlist/{pid}",
            "songs": lambda _info, first=DEFAULT_PAGE, offset=0, search=None: self.songs_page(
                first, offset, search=search, playlist_id=pid
            ),
        }

    def song(self, row: dict[str, Any]) -> dict[str, Any]:
        sid, album_id = row["id"], row.pop("albumId", None)
        return {
            **row,
            "url": f"https://open.spotify.com/track/{sid}",
            "album": lambda _info: self.album_by_id(album_id) if album_id else None,
            "artists": lambda _info: [
                self.artist(r)
                for r in self.rows(
                    f"SELECT {ARTIST_COLUMNS} FROM song_artists sa JOIN artists a USING (artist_id) "
                    "WHERE sa.song_id = ? ORDER BY sa.position",
                    [sid],
                )
            ],
            "playlists": lambda _info, first=DEFAULT_PAGE, offset=0: self.page(
                PLAYLIST_SELECT,
                ["playlist_id IN (SELECT playlist_id FROM playlist_songs WHERE song_id = ?)"],
                [sid],
                "name, playlist_id",
                first,
                offset,
                self.playlist,
            ),
        }

    def artist(self, row: dict[str, Any]) -> dict[str, Any]:
        aid = row["id"]
        return {
            **row,
            "genres": row.get("genres") or [],
            "url": f"https://open.spotify.com/artist/{aid}",
            "songs": lambda _info, first=DEFAULT_PAGE, offset=0: self.songs_page(first, offset, artist_id=aid),
        }

    def album(self, row: dict[str, Any]) -> dict[str, Any]:
        aid = row["id"]
        return {
            **row,
            "url": f"https://open.spotify.com/album/{aid}",
            "songs": lambda _info, first=DEFAULT_PAGE, offset=0: self.songs_page(first, offset, album_id=aid),
        }

    def album_by_id(self, album_id: str) -> dict[str, Any] | None:
        rows = self.rows(f"SELECT {ALBUM_COLUMNS} FROM albums WHERE album_id = ?", [album_id])
        return self.album(rows[0]) if rows else None

    def listen(self, row: dict[str, Any]) -> dict[str, Any]:
        sid = row.pop("songId", None)
        return {**row, "song": lambda _info: self.song_by_id(sid) if sid else None}

    def song_by_id(self, song_id: str) -> dict[str, Any] | None:
        rows = self.rows(f"SELECT {SONG_COLUMNS} FROM songs s WHERE s.song_id = ?", [song_id])
        return self.song(rows[0]) if rows else None

    def songs_page(
        self,
        first: int,
        offset: int,
        *,
        search: str | None = None,
        explicit: bool | None = None,
        min_popularity: int | None = None,
        playlist_id: str | None = None,
        artist_id: str | None = None,
        album_id: str | None = None,
    ) -> dict[str, Any]:
        where: list[str] = []
        params: list[Any] = []
        if playlist_id:
            select = f"SELECT {SONG_COLUMNS}, ps.position FROM playlist_songs ps JOIN songs s ON s.song_id = ps.song_id"
            where.append("ps.playlist_id = ?")
            params.append(playlist_id)
            order = "ps.position"
        else:
            select, order = f"SELECT {SONG_COLUMNS} FROM songs s", "s.name, s.song_id"
        if search:
            where.append(
                "(s.name ILIKE ? ESCAPE '\\' OR s.song_id IN (SELECT sa.song_id FROM song_artists sa JOIN artists a "
                "USING (artist_id) WHERE a.name ILIKE ? ESCAPE '\\') OR s.album_id IN (SELECT album_id FROM albums "
                "WHERE name ILIKE ? ESCAPE '\\'))"
            )
            params += [_like(search)] * 3
        if explicit is not None:
            where.append("s.explicit = ?")
            params.append(explicit)
        if min_popularity is not None:
            where.append("s.popularity >= ?")
            params.append(min_popularity)
        if artist_id:
            where.append("s.song_id IN (SELECT song_id FROM song_artists WHERE artist_id = ?)")
            params.append(artist_id)
        if album_id:
            where.append("s.album_id = ?")
            params.append(album_id)
        return self.page(select, where, params, order, first, offset, self.song)

    def root(self) -> dict[str, Any]:
        def playlists(_info: Any, first: int = DEFAULT_PAGE, offset: int = 0, nameContains: str | None = None) -> Any:
            where, params = (["name ILIKE ? ESCAPE '\\'"], [_like(nameContains)]) if nameContains else ([], [])
            return self.page(PLAYLIST_SELECT, where, params, "name, playlist_id", first, offset, self.playlist)

        def playlist(_info: Any, id: str) -> Any:
            rows = self.rows(f"{PLAYLIST_SELECT} WHERE playlist_id = ?", [parse_playlist_ref(id)])
            return self.playlist(rows[0]) if rows else None

        def songs(
            _info: Any,
            first: int = DEFAULT_PAGE,
            offset: int = 0,
            search: str | None = None,
            explicit: bool | None = None,
            minPopularity: int | None = None,
        ) -> Any:
            return self.songs_page(first, offset, search=search, explicit=explicit, min_popularity=minPopularity)

        def artists(
            _info: Any,
            first: int = DEFAULT_PAGE,
            offset: int = 0,
            nameContains: str | None = None,
            genre: str | None = None,
        ) -> Any:
            where: list[str] = []
            params: list[Any] = []
            if nameContains:
                where.append("a.name ILIKE ? ESCAPE '\\'")
                params.append(_like(nameContains))
            if genre:
                where.append("list_contains(a.genres, ?)")
                params.append(genre)
            return self.page(
                f"SELECT {ARTIST_COLUMNS} FROM artists a",
                where,
                params,
                "a.name, a.artist_id",
                first,
                offset,
                self.artist,
            )

        def albums(
            _info: Any,
            first: int = DEFAULT_PAGE,
            offset: int = 0,
            nameContains: str | None = None,
            releasedFrom: int | None = None,
            releasedTo: int | None = None,
        ) -> Any:
            where: list[str] = []
            params: list[Any] = []
            if nameContains:
                where.append("name ILIKE ? ESCAPE '\\'")
                params.append(_like(nameContains))
            if releasedFrom is not None:
                where.append("year(release_date) >= ?")
                params.append(releasedFrom)
            if releasedTo is not None:
                where.append("year(release_date) <= ?")
                params.append(releasedTo)
            return self.page(
                f"SELECT {ALBUM_COLUMNS} FROM albums", where, params, "name, album_id", first, offset, self.album
            )

        def listens(
            _info: Any, first: int = DEFAULT_PAGE, offset: int = 0, songId: str | None = None, **span: Any
        ) -> Any:
            where: list[str] = []
            params: list[Any] = []
            for key, op in (("from", ">="), ("to", "<")):
                if span.get(key):
                    where.append(f"ended_at {op} ?")
                    params.append(_timestamp(span[key], key))
            if songId:
                where.append("song_id = ?")
                params.append(_id(songId, "song"))
            return self.page(LISTEN_SELECT, where, params, "ended_at DESC, listen_id", first, offset, self.listen)

        def reports(_info: Any) -> Any:
            found = all_reports()
            return [
                {"name": n, "title": found[n].title, "description": found[n].description, "chart": n in CHARTS}
                for n in REPORT_ORDER
                if n in found
            ] + [
                {"name": n, "title": r.title, "description": r.description, "chart": n in CHARTS}
                for n, r in found.items()
                if n not in REPORT_ORDER
            ]

        def report(_info: Any, name: str, playlistId: str | None = None) -> Any:
            found = all_reports()
            if name not in found:
                raise GraphQLError(f"no report named {name!r}; reports: {', '.join(found)}")
            params = {"playlist": playlistId} if playlistId else {}
            result = self.run(lambda e: run_report(e, name, params))
            return {"name": name, "title": found[name].title, "columns": result.columns, "rows": result_rows(result)}

        return {
            "playlists": playlists,
            "playlist": playlist,
            "songs": songs,
            "song": lambda _info, id: self.song_by_id(_id(id, "song")),
            "artists": artists,
            "artist": lambda _info, id: self._one(
                f"SELECT {ARTIST_COLUMNS} FROM artists a WHERE a.artist_id = ?", _id(id, "artist"), self.artist
            ),
            "albums": albums,
            "album": lambda _info, id: self.album_by_id(_id(id, "album")),
            "listens": listens,
            "reports": reports,
            "report": report,
        }

    def _one(self, sql: str, key: str, make: Any) -> Any:
        rows = self.rows(sql, [key])
        return make(rows[0]) if rows else None


def _timestamp(text: str, name: str) -> dt.datetime:
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError as exc:
        raise GraphQLError(f"`{name}` must be an ISO date or timestamp, e.g. 2024-01-31") from exc
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


PLAYLIST_SELECT = (
    "SELECT playlist_id AS id, name, description, owner_name, followers, total_items, extracted_at FROM playlists"
)
SONG_COLUMNS = "s.song_id AS id, s.name, s.duration_ms, s.explicit, s.popularity, s.isrc, s.album_id AS album_id"
ARTIST_COLUMNS = "a.artist_id AS id, a.name, a.genres, a.followers, a.popularity"
ALBUM_COLUMNS = "album_id AS id, name, album_type, release_date, total_tracks, label"
LISTEN_SELECT = (
    "SELECT listen_id AS id, ended_at, ms_played, track_name, artist_name, "
    "album_name, platform, skipped, shuffle, song_id FROM listens"
)


def run_graphql(run: Runner, query: str, variables: Any = None, operation_name: str | None = None) -> dict[str, Any]:
    """One GraphQL request -> the response body ({"data": ..., "errors": [...]}), never raising."""
    if not isinstance(query, str) or not query.strip():
        return {"errors": [{"message": "pass the GraphQL query as ?query= (or a JSON body's `query`)"}]}
    if len(query) > MAX_QUERY_CHARS:
        return {"errors": [{"message": f"query is longer than {MAX_QUERY_CHARS} characters"}]}
    if variables is not None and not isinstance(variables, dict):
        return {"errors": [{"message": "`variables` must be a JSON object"}]}
    variables = variables or {}
    try:
        document = parse(query, max_lexical_tokens=2_000, max_comments=200)
    except GraphQLError as exc:
        return {"errors": [exc.formatted]}
    errors = validate(SCHEMA, document, max_errors=10)
    if errors:
        return {"errors": [e.formatted for e in errors]}
    errors = check_limits(document, variables)
    if errors:
        return {"errors": [e.formatted for e in errors]}
    for definition in document.definitions:
        if isinstance(definition, OperationDefinitionNode) and definition.operation.value != "query":
            return {"errors": [{"message": "read-only: only queries are answered"}]}
    result = execute(
        SCHEMA, document, root_value=Resolvers(run).root(), variable_values=variables, operation_name=operation_name
    )
    if not isinstance(result, ExecutionResult):  # pragma: no cover - every resolver is synchronous
        return {"errors": [{"message": "unexpected asynchronous result"}]}
    body: dict[str, Any] = {"data": result.data}
    if result.errors:
        body["errors"] = [_safe_error(e) for e in result.errors]
    return body


def _safe_error(error: GraphQLError) -> dict[str, Any]:
    """An error as the client sees it: our own messages, a pipeline error's one line, nothing internal."""
    original = error.original_error
    if original is not None and not isinstance(original, GraphQLError | PipelineError):
        return {"message": "internal error", "path": error.path}
    return error.formatted  # type: ignore[return-value]
