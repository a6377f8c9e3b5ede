"""The public names of `spotify_pipeline` (in the spirit of httpx's tests/test_exported_members.py)."""

from __future__ import annotations

import subprocess
import sys

import spotify_pipeline


def test_all_lists_exactly_the_lazy_members() -> None:
    assert sorted(spotify_pipeline.__all__) == sorted(["__version__", *spotify_pipeline._LAZY])


def test_all_exports_are_importable_and_claim_the_package() -> None:
    for name in spotify_pipeline.__all__:
        member = getattr(spotify_pipeline, name)
        if name == "__version__":
            continue
        assert member.__module__.startswith("spotify_pipeline."), name
        assert member.__name__ == name, name


def test_every_public_member_is_listed_in_all() -> None:
    exported = set(spotify_pipeline.__all__)
    public = {n for n in dir(spotify_pipeline) if not n.startswith("_") and n not in {"annotations", "TYPE_CHECKING"}}
    modules = {n for n in public if type(getattr(spotify_pipeline, n)).__name__ == "module"}
    assert public - modules - {"Any"} <= exported
    assert {"Lake", "RunResult", "CheckReport", "TableInfo", "PipelineError"} <= exported


def test_the_package_import_stays_light() -> None:
    """`import spotify_pipeline` (and so every CLI start) does not load the data libraries until `Lake` is used."""
    code = "import sys, spotify_pipeline; print([m for m in ('pyarrow', 'duckdb', 'pyiceberg') if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
    code = "import spotify_pipeline; print(spotify_pipeline.Lake.open.__qualname__)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == (
        "Lake.open"
    )
