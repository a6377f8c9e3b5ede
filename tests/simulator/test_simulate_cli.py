"""`spotify-pipeline simulate` as a user meets it: the lines to paste, the playlist IDs, a busy port."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

from spotify_pipeline.simulator import Catalog, CatalogConfig

from ..conftest import cli


def test_simulate_prints_complete_exports_and_writes_every_playlist_id(tmp_path: Path) -> None:
    ids_file = tmp_path / "ids.txt"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPOTIFY_")}
    process = subprocess.Popen(
        [sys.executable, "-m", "spotify_pipeline", "simulate", "--playlists", "9", "--ids-file", str(ids_file)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert process.stdout is not None
        lines = [process.stdout.readline() for _ in range(7)]
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=20)
    exports = [line.strip() for line in lines if line.strip().startswith("export ")]
    assert "export SPOTIFY_CLIENT_SECRET=sim-client-secret" in exports
    assert "export SPOTIFY_CLIENT_ID=sim-client-id" in exports
    assert all("#" not in line for line in exports), "each export line is complete, nothing left to add"
    expected = [Catalog(CatalogConfig(playlists=9)).id_of("playlist", i) for i in range(9)]
    assert ids_file.read_text().splitlines() == expected
    assert any(str(ids_file) in line for line in lines)


def test_a_busy_port_is_a_one_line_error() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = cli("simulate", "--port", str(port))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and f"127.0.0.1:{port}" in lines[0] and "--port 0" in lines[0]
