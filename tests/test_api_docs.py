"""docs/API.md stays true: its Python blocks run, in order, in a fresh folder against the simulator."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

API_DOC = Path(__file__).resolve().parents[1] / "docs" / "API.md"


def python_blocks(text: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", text, flags=re.DOTALL | re.MULTILINE)


def test_api_doc_examples_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("SPOTIFY_") and name != "SPOTIFY_PIPELINE_CONFIG_DIR":
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    blocks = python_blocks(API_DOC.read_text(encoding="utf-8"))
    assert len(blocks) >= 6
    namespace: dict[str, object] = {"__name__": "api_doc"}
    for number, block in enumerate(blocks, 1):
        try:
            exec(compile(block, f"docs/API.md block {number}", "exec"), namespace)
        except Exception as exc:
            raise AssertionError(f"docs/API.md block {number} failed: {exc!r}\n{block}") from exc
    assert (tmp_path / "lake" / "catalog.db").exists() and (tmp_path / "songs.parquet").exists()
