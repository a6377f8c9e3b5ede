"""Docs that must stay true: the schema page matches the table contract."""

from __future__ import annotations

import re
from pathlib import Path

from spotify_pipeline.tables.contract import TABLES

DOCS = Path(__file__).resolve().parents[1] / "docs"


def documented_tables() -> dict[str, list[str]]:
    text = (DOCS / "SCHEMA.md").read_text(encoding="utf-8")
    tables: dict[str, list[str]] = {}
    current = None
    for line in text.splitlines():
        heading = re.match(r"^## (\w+)$", line)
        if heading:
            current = heading.group(1)
            tables[current] = []
            continue
        row = re.match(r"^\| (\w+) \| ", line)
        if current and row and row.group(1) != "column":
            tables[current].append(row.group(1))
    return tables


def test_schema_page_documents_every_table_and_column() -> None:
    documented = documented_tables()
    assert set(documented) == set(TABLES)
    for name, spec in TABLES.items():
        assert documented[name] == spec.schema.names, name


def test_readme_session_output_is_what_the_commands_print(make_simulator: object, tmp_path: Path) -> None:
    """The README's example session, re-run against the same simulated catalog: the summary lines it shows
    are the ones the commands print today (run ids and byte counts aside)."""
    from .conftest import cli, sim_env

    readme = (DOCS.parent / "README.md").read_text(encoding="utf-8")
    session = readme.split("## A session", 1)[1].split("```", 2)[1]
    shown = [
        line
        for line in session.splitlines()
        if line.startswith(("playlists:", "items:", "enriched:", "requests:", "tables:", "(3 rows)"))
    ]
    assert len(shown) >= 9
    server = make_simulator(playlists=4, large_playlist_items=1200)  # type: ignore[operator]
    env = sim_env(server, tmp_path / "lake")
    ids = server.playlist_ids()[:3]
    printed = cli(
        "run",
        "--playlist",
        f"spotify:playlist:{ids[0]}",
        "--playlist",
        f"https://open.spotify.com/playlist/{ids[1]}",
        "--playlist",
        ids[2],
        env=env,
    ).stdout
    printed += cli(
        "query",
        "SELECT p.name, count(*) AS items, count(DISTINCT ps.song_id) AS songs FROM playlists p "
        "JOIN playlist_songs ps USING (playlist_id) GROUP BY 1 ORDER BY 2 DESC",
        env=env,
    ).stdout
    printed += cli("run", *[a for pid in ids for a in ("--playlist", pid)], env=env).stdout
    for line in shown:
        assert line in printed.splitlines(), line
    assert all(pid in readme for pid in ids), "the README's playlist IDs come from the same seed"
