"""The serve tests run over the report tests' lake (observed on two days, playlists changed in between) and use
the same Chromium; the fixtures are defined once, in tests/reports/conftest.py."""

from __future__ import annotations

from ..reports.conftest import CHROMIUM_ARGS, Lake, chromium, lake

__all__ = ["CHROMIUM_ARGS", "Lake", "chromium", "lake"]
