"""SPOTIFY_PIPELINE_OPEN_TRIES: how many reads a reader makes before `TablesChanging`; a bad value is refused."""

from __future__ import annotations

import pytest

from spotify_pipeline.errors import ConfigError
from spotify_pipeline.query.consistent import MAX_TRIES, TRIES_ENV, open_tries


def test_the_default_a_setting_and_bad_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(TRIES_ENV, raising=False)
    assert open_tries() == MAX_TRIES
    monkeypatch.setenv(TRIES_ENV, "3")
    assert open_tries() == 3
    for bad in ("0", "-1", "x", "2.5"):
        monkeypatch.setenv(TRIES_ENV, bad)
        with pytest.raises(ConfigError, match=TRIES_ENV):
            open_tries()
