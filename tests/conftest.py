"""Shared fixtures: a simulated Spotify Web API over real HTTP on 127.0.0.1, stopped after each test."""

from __future__ import annotations

import http.server
import json
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from spotify_pipeline.simulator import Catalog, CatalogConfig, FaultPlan, SimulatedSpotify

SimulatorFactory = Callable[..., SimulatedSpotify]


@pytest.fixture(autouse=True)
def isolated_config(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own config folder, so no saved login of the machine's user is ever used."""
    folder = tmp_path_factory.mktemp("config")
    monkeypatch.setenv("SPOTIFY_PIPELINE_CONFIG_DIR", str(folder))
    return folder


@pytest.fixture
def make_simulator() -> Iterator[SimulatorFactory]:
    """Start simulators with any catalog/fault settings; all are stopped when the test ends."""
    started: list[SimulatedSpotify] = []

    def factory(
        faults: FaultPlan | None = None, legacy_items: bool = False, token_ttl: float = 3600.0, **catalog: Any
    ) -> SimulatedSpotify:
        server = SimulatedSpotify(
            Catalog(CatalogConfig(**catalog)), faults=faults, legacy_items=legacy_items, token_ttl=token_ttl
        )
        started.append(server.start())
        return server

    yield factory
    for server in started:
        server.stop()


@pytest.fixture
def simulator(make_simulator: SimulatorFactory) -> SimulatedSpotify:
    return make_simulator(playlists=5, items_per_playlist=30, large_playlist_items=260)


class LakeTemplates:
    """Lakes built once per test process, then restored byte for byte into the folder they were built in
    before each test that uses one (tests may change or move their lake). Why not a copy in each test's own
    folder: Iceberg records absolute paths, so a lake copied elsewhere is refused until `repair`, which would
    change what the test sees; restored where it was made, it is the lake a build there would give. An
    xdist worker runs one test at a time, so one folder per template is enough."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def restore(self, name: str, build: Callable[[Path], None]) -> Path:
        """The folder `name`, as `build(folder)` left it the first time (built then, restored afterwards)."""
        place, pristine = self.root / name, self.root / f"{name}.pristine"
        shutil.rmtree(place, ignore_errors=True)
        if pristine.exists():
            shutil.copytree(pristine, place, symlinks=True)
        else:
            place.mkdir()
            build(place)
            shutil.copytree(place, pristine, symlinks=True)
        return place


@pytest.fixture(scope="session")
def lake_templates(tmp_path_factory: pytest.TempPathFactory) -> LakeTemplates:
    """Shared built lakes (see LakeTemplates): build a lake once per worker, not once per test."""
    return LakeTemplates(tmp_path_factory.mktemp("templates"))


def client_token(server: SimulatedSpotify) -> str:
    response = httpx.post(
        f"{server.accounts_url}/api/token",
        data={"grant_type": "client_credentials"},
        auth=(server.client_id, server.client_secret),
    )
    response.raise_for_status()
    return str(response.json()["access_token"])


def api_get(server: SimulatedSpotify, path: str, token: str | None = None, **params: Any) -> httpx.Response:
    token = token or client_token(server)
    url = path if path.startswith("http") else f"{server.api_url}{path}"
    return httpx.get(url, params=params or None, headers={"Authorization": f"Bearer {token}"}, timeout=10)


def settings_for(server: SimulatedSpotify, lake: Any, **overrides: Any) -> Any:
    """Settings pointing at a simulator and a lake folder, with no environment or config file involved."""
    from spotify_pipeline.config import load_settings

    values = {
        "lake": str(lake),
        "api_url": server.api_url,
        "accounts_url": server.accounts_url,
        "client_id": server.client_id,
        "client_secret": server.client_secret,
        **overrides,
    }
    return load_settings(values, env={})


def raw_item_positions(lake: Any, run_id: str) -> list[tuple[str, int]]:
    """(playlist_id, position) of every playlist item stored in the raw zone by one run."""
    from pathlib import Path

    from spotify_pipeline.lake import LocalStorage, RawZoneReader

    reader = RawZoneReader(LocalStorage(Path(lake)))
    positions: list[tuple[str, int]] = []
    for key in LocalStorage(Path(lake)).list("raw/"):
        if f"run_id={run_id}/" not in key or not key.endswith(".jsonl.gz"):
            continue
        for record in reader.records(key):
            entity = record.meta["entity"]
            if entity == "playlists":
                page = record.body.get("items") or record.body.get("tracks")
                if page is None:
                    continue
            elif entity == "playlist_items":
                page = record.body
            else:
                continue
            positions += [(record.meta["playlist_id"], page["offset"] + i) for i in range(len(page["items"]))]
    return positions


def expected_enrichment(server: SimulatedSpotify, playlists: list[int]) -> tuple[set[str], set[str]]:
    """Artist and album IDs referenced by the given playlists, computed from the simulator's catalog."""
    catalog = server.catalog
    artists: set[str] = set()
    albums: set[str] = set()
    for index in playlists:
        for entry in catalog.entries(index):
            if entry.kind != "track":
                continue
            album = entry.ref // 8
            albums.add(catalog.id_of("album", album))
            for artist in catalog.track_artists(entry.ref) + catalog.album_artists(album):
                artists.add(catalog.id_of("artist", artist))
    return artists, albums


def cli(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run `spotify-pipeline` as a real process, with no SPOTIFY_* variables but those given."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("SPOTIFY_") or k == "SPOTIFY_PIPELINE_CONFIG_DIR"}
    return subprocess.run(
        [sys.executable, "-m", "spotify_pipeline", *args],
        env={**base, **(env or {})},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )


def bench_on_generated_lake(tmp_path: Path, command: list[str], items: int = 2000) -> dict[str, Any]:
    """Generate a small lake with `bench.generate`, run the benchmark module `command` on it (over `--lake`)
    and return the JSON line it prints last."""
    lake = str(tmp_path / "lake")
    root = Path(__file__).resolve().parents[1]
    for step in (["bench.generate", "--items", str(items)], command):
        done = subprocess.run(
            [sys.executable, "-m", *step, "--lake", lake], cwd=root, capture_output=True, text=True, timeout=600
        )
        assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def sim_env(server: SimulatedSpotify, lake: Path) -> dict[str, str]:
    """Environment that points a `spotify-pipeline` process at a simulator and a lake."""
    return {
        "SPOTIFY_API_URL": server.api_url,
        "SPOTIFY_ACCOUNTS_URL": server.accounts_url,
        "SPOTIFY_CLIENT_ID": server.client_id,
        "SPOTIFY_CLIENT_SECRET": server.client_secret,
        "SPOTIFY_PIPELINE_LAKE": str(lake),
    }


# Columns that record *when* something was observed; they legitimately differ between two lakes.
OBSERVATION_TIMES = {
    "first_seen_at",
    "last_seen_at",
    "extracted_at",
    "enriched_at",
    "items_extracted_at",
    "observed_at",
    "run_id",
    "changed_at",
    "previous_run_id",
}


def comparable_tables(lake: Any) -> dict[str, list[tuple[Any, ...]]]:
    """Every data table's rows without the observation-time columns, sorted: equal for two lakes built
    from the same source, whenever they were built."""
    from spotify_pipeline.query.engine import QueryEngine
    from spotify_pipeline.tables.catalog import open_catalog
    from spotify_pipeline.tables.contract import DATA_TABLES, TABLES

    with QueryEngine(open_catalog(str(lake))) as engine:
        out = {}
        for name in DATA_TABLES:
            cols = [c for c in TABLES[name].schema.names if c not in OBSERVATION_TIMES]
            out[name] = sorted(engine.execute(f"SELECT {', '.join(cols)} FROM {name}").rows, key=repr)
        return out


def referenced_files(catalog: Any) -> set[str]:
    """Every manifest list, manifest and live data file of every table's snapshots, as pyiceberg names them
    (file:// or s3:// URIs), read from the table metadata, not with the retention code under test."""
    files = set()
    for name in catalog.table_names():
        table = catalog.table(name)
        for snapshot in table.metadata.snapshots:
            files.add(snapshot.manifest_list)
            for manifest in snapshot.manifests(table.io):
                files.add(manifest.manifest_path)
                files |= {e.data_file.file_path for e in manifest.fetch_manifest_entry(table.io)}
    return files


def kept_metadata_files(table: Any) -> set[str]:
    """The table's current metadata file and the earlier ones its metadata log still lists (URIs)."""
    return {e.metadata_file for e in table.metadata.metadata_log} | {table.metadata_location}


def rewrite_raw_part(lake: Path, part: Path, lines: list[bytes]) -> None:
    """Replace a raw part's lines, and its manifest entry with them, as if the run had stored them so (tests
    may edit the otherwise immutable raw zone; the transform refuses a part that disagrees with its manifest)."""
    import gzip
    import hashlib
    import json

    data = gzip.compress(b"\n".join(lines) + b"\n")
    part.write_bytes(data)
    key = part.relative_to(lake).as_posix()
    for path in (lake / "raw" / "_manifests").rglob("*.json"):
        manifest = json.loads(path.read_text())
        for entry in manifest["files"]:
            if entry["key"] == key:
                entry.update(
                    bytes=len(data),
                    raw_bytes=len(gzip.decompress(data)),
                    records=len(lines),
                    sha256=hashlib.sha256(data).hexdigest(),
                )
                path.write_text(json.dumps(manifest))


class _WebhookReceiver(http.server.BaseHTTPRequestHandler):
    received: list[dict[str, Any]] = []

    def do_POST(self) -> None:
        self.received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        return


@pytest.fixture
def webhook() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """A real HTTP endpoint on 127.0.0.1 for SPOTIFY_PIPELINE_ALERT_WEBHOOK: its URL and the JSON bodies POSTed."""
    received: list[dict[str, Any]] = []
    handler = type("Receiver", (_WebhookReceiver,), {"received": received})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook", received
    server.shutdown()
    server.server_close()
