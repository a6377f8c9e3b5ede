"""`spotify-pipeline demo`: the whole pipeline against the simulated API, into a local lake, no credentials."""

from __future__ import annotations

from dataclasses import dataclass

from .config import Settings, load_settings
from .extract.extractor import Progress
from .lake_api import Lake, RunResult
from .query import QueryResult
from .simulator import Catalog, CatalogConfig, SimulatedSpotify

DEMO_CATALOG = CatalogConfig(seed=2026, playlists=12, items_per_playlist=80, large_playlist_items=2500, taste=True)

EXAMPLE_QUESTIONS: dict[str, str] = {
    "Top artists by playlist appearances": """
        SELECT a.name AS artist, count(*) AS appearances, count(DISTINCT ps.playlist_id) AS playlists
        FROM playlist_songs ps
        JOIN song_artists sa ON sa.song_id = ps.song_id
        JOIN artists a ON a.artist_id = sa.artist_id
        GROUP BY a.name ORDER BY appearances DESC, artist LIMIT 5""",
    "Songs by release decade": """
        SELECT coalesce((year(al.release_date) // 10 * 10)::VARCHAR || 's', 'unknown') AS decade,
               count(*) AS songs
        FROM songs s JOIN albums al ON al.album_id = s.album_id
        GROUP BY decade ORDER BY decade""",
    "Biggest playlists": """
        SELECT p.name AS playlist, p.owner_name AS owner, count(ps.position) AS items,
               count(ps.song_id) AS songs
        FROM playlists p LEFT JOIN playlist_songs ps USING (playlist_id)
        GROUP BY p.playlist_id, p.name, p.owner_name ORDER BY items DESC LIMIT 5""",
}


@dataclass
class DemoResult:
    result: RunResult
    answers: dict[str, QueryResult]
    api_requests: int


def run_demo(lake: str, progress: Progress | None = None, catalog: CatalogConfig = DEMO_CATALOG) -> DemoResult:
    """Start the simulator on a free loopback port, run the pipeline, answer the example questions."""
    with SimulatedSpotify(Catalog(catalog)) as server:
        settings: Settings = load_settings(
            {
                "lake": lake,
                "api_url": server.api_url,
                "accounts_url": server.accounts_url,
                "client_id": server.client_id,
                "client_secret": server.client_secret,
            },
            env={},
        )
        opened = Lake.open(settings=settings)
        result = opened.run(server.playlist_ids(), progress=progress)
        requests = server.stats.api_requests
    answers = {title: opened.rows(sql) for title, sql in EXAMPLE_QUESTIONS.items()}
    return DemoResult(result, answers, requests)
