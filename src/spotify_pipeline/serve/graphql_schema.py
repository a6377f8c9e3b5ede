"""The GraphQL schema `serve` answers at `/graphql` (SDL, read-only: no mutations, no subscriptions) and the
limits a query must fit before anything runs: query size, depth, and cost (paged fields multiply what they
select by the page size they ask for; aliases count the same)."""

from __future__ import annotations

from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLSchema,
    InlineFragmentNode,
    IntValueNode,
    OperationDefinitionNode,
    SelectionSetNode,
    VariableNode,
    build_schema,
    print_schema,
)

MAX_QUERY_CHARS = 10_000
MAX_DEPTH = 8
MAX_COST = 5_000
MAX_PAGE = 100
DEFAULT_PAGE = 20


SDL = '''
"""Any JSON value: a report's rows."""
scalar JSON

"""Read-only access to the lake's current tables and its named reports. Every list is paged: `first`
(1-100, default 20) and `offset`; `pageInfo.total` counts every match."""
type Query {
  playlists(first: Int = 20, offset: Int = 0, nameContains: String): PlaylistPage!
  playlist(id: ID!): Playlist
  songs(first: Int = 20, offset: Int = 0, search: String, explicit: Boolean, minPopularity: Int): SongPage!
  song(id: ID!): Song
  artists(first: Int = 20, offset: Int = 0, nameContains: String, genre: String): ArtistPage!
  artist(id: ID!): Artist
  albums(first: Int = 20, offset: Int = 0, nameContains: String, releasedFrom: Int, releasedTo: Int): AlbumPage!
  album(id: ID!): Album
  """Listening history (import-history / recently played), newest first; empty until some is imported.
  `from` and `to` are ISO dates or timestamps (UTC), `to` exclusive."""
  listens(first: Int = 20, offset: Int = 0, from: String, to: String, songId: ID): ListenPage!
  reports: [ReportInfo!]!
  report(name: String!, playlistId: ID): ReportResult!
}

type PageInfo {
  total: Int!
  offset: Int!
  hasNextPage: Boolean!
}

type PlaylistPage { pageInfo: PageInfo! nodes: [Playlist!]! }
type SongPage { pageInfo: PageInfo! nodes: [Song!]! }
type ArtistPage { pageInfo: PageInfo! nodes: [Artist!]! }
type AlbumPage { pageInfo: PageInfo! nodes: [Album!]! }
type ListenPage { pageInfo: PageInfo! nodes: [Listen!]! }

type Playlist {
  id: ID!
  name: String
  description: String
  ownerName: String
  followers: Int
  totalItems: Int
  extractedAt: String
  "Opens the playlist in Spotify."
  url: String!
  "The playlist's songs in playlist order; `search` matches song, artist or album names."
  songs(first: Int = 20, offset: Int = 0, search: String): SongPage!
}

type Song {
  id: ID!
  name: String
  durationMs: Int
  explicit: Boolean
  popularity: Int
  isrc: String
  "Opens the song in Spotify."
  url: String!
  album: Album
  artists: [Artist!]!
  playlists(first: Int = 20, offset: Int = 0): PlaylistPage!
}

type Artist {
  id: ID!
  name: String
  genres: [String!]!
  followers: Int
  popularity: Int
  url: String!
  songs(first: Int = 20, offset: Int = 0): SongPage!
}

type Album {
  id: ID!
  name: String
  albumType: String
  releaseDate: String
  totalTracks: Int
  label: String
  url: String!
  songs(first: Int = 20, offset: Int = 0): SongPage!
}

type Listen {
  id: ID!
  endedAt: String!
  msPlayed: Int
  trackName: String
  artistName: String
  albumName: String
  platform: String
  skipped: Boolean
  shuffle: Boolean
  song: Song
}

type ReportInfo {
  name: String!
  title: String!
  description: String!
  chart: Boolean!
}

type ReportResult {
  name: String!
  title: String!
  columns: [String!]!
  rows: JSON!
}
'''


SCHEMA: GraphQLSchema = build_schema(SDL)  # the JSON scalar passes values through as they are


def schema_sdl() -> str:
    return print_schema(SCHEMA)


def _page_size(node: FieldNode, variables: dict[str, Any]) -> int | None:
    for arg in node.arguments or ():
        if arg.name.value == "first":
            if isinstance(arg.value, IntValueNode):
                return int(arg.value.value)
            if isinstance(arg.value, VariableNode):
                value = variables.get(arg.value.name.value)
                return int(value) if isinstance(value, int) else DEFAULT_PAGE
    return None


def _measure(
    selection_set: SelectionSetNode | None,
    fragments: dict[str, FragmentDefinitionNode],
    variables: dict[str, Any],
    depth: int,
    seen: frozenset[str] = frozenset(),
) -> tuple[int, int]:
    """(deepest level, cost) of a selection set, fragments expanded."""
    if selection_set is None:
        return depth, 0
    deepest, cost = depth, 0
    for selection in selection_set.selections:
        if isinstance(selection, FieldNode):
            introspection = selection.name.value.startswith("__")
            child_depth, child_cost = _measure(
                selection.selection_set, fragments, variables, depth if introspection else depth + 1, seen
            )
            first = _page_size(selection, variables)
            multiplier = first if first is not None and first > 0 else 1
            is_paged = selection.name.value in _PAGED
            if is_paged and first is None:
                multiplier = DEFAULT_PAGE
            deepest = max(deepest, child_depth if not introspection else depth)
            cost += 1 + multiplier * child_cost
        elif isinstance(selection, FragmentSpreadNode):
            name = selection.name.value
            if name in seen or name not in fragments:
                continue
            d, c = _measure(fragments[name].selection_set, fragments, variables, depth, seen | {name})
            deepest, cost = max(deepest, d), cost + c
        elif isinstance(selection, InlineFragmentNode):
            d, c = _measure(selection.selection_set, fragments, variables, depth, seen)
            deepest, cost = max(deepest, d), cost + c
    return deepest, cost


_PAGED = {"playlists", "songs", "artists", "albums", "listens"}


def check_limits(document: DocumentNode, variables: dict[str, Any]) -> list[GraphQLError]:
    fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
    errors = []
    for definition in document.definitions:
        if not isinstance(definition, OperationDefinitionNode):
            continue
        depth, cost = _measure(definition.selection_set, fragments, variables, 0)
        if depth > MAX_DEPTH:
            errors.append(GraphQLError(f"query is {depth} levels deep; at most {MAX_DEPTH} are allowed"))
        if cost > MAX_COST:
            errors.append(
                GraphQLError(
                    f"query cost {cost} is over the limit of {MAX_COST} (each field costs 1; a paged field "
                    "multiplies what it selects by `first`): ask for smaller pages or fewer nested lists"
                )
            )
    return errors
