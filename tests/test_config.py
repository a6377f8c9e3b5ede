"""Settings are checked as they are built: every number finite and in range, the memory limit's format."""

from __future__ import annotations

from pathlib import Path

import pytest

from spotify_pipeline.config import Settings, load_settings, parse_batch_bytes, parse_memory_limit
from spotify_pipeline.errors import ConfigError


@pytest.mark.parametrize(
    ("text", "expected"),
    [("1500MB", "1500MB"), ("2GB", "2GB"), ("1.5GiB", "1.5GiB"), (" 512 mib ", "512mib"), ("", "")],
)
def test_memory_limits_duckdb_understands_are_accepted(text: str, expected: str) -> None:
    assert parse_memory_limit(text) == expected


@pytest.mark.parametrize("text", ["lots", "0GB", "-1GB", "1GB'; SELECT 1; --", "50%", "2g", "1.5", "GB", "1 GBs"])
def test_anything_else_is_refused_naming_the_variable(text: str) -> None:
    with pytest.raises(ConfigError, match="SPOTIFY_PIPELINE_MEMORY_LIMIT"):
        parse_memory_limit(text)


def test_batch_bytes_default_and_refusal() -> None:
    assert parse_batch_bytes("") == 1024**3 and parse_batch_bytes("4096") == 4096
    with pytest.raises(ConfigError, match="is below 1"):
        parse_batch_bytes("0")


def test_settings_built_directly_are_checked_too() -> None:
    with pytest.raises(ConfigError, match=r"concurrency.*2\.5 is not a whole number"):
        Settings(concurrency=2.5)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"max_retry_wait.*not a finite number"):
        Settings(max_retry_wait=float("inf"))
    assert Settings(rate_limit=5).rate_limit == 5  # an int where a float is expected is fine


def test_whole_numbers_in_toml_are_accepted_and_the_source_is_named(tmp_path: Path) -> None:
    config = tmp_path / "settings.toml"
    config.write_text("concurrency = 2\nrate_limit = 10\n", encoding="utf-8")
    settings = load_settings(env={}, config_file=config)
    assert (settings.concurrency, settings.rate_limit) == (2, 10.0)
    config.write_text("memory_limit = '1GB'\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="SPOTIFY_PIPELINE_MEMORY_LIMIT only"):
        load_settings(env={}, config_file=config)
    with pytest.raises(ConfigError, match=r"invalid rate_limit: --rate-limit = -1\.0 is below 0"):
        load_settings({"rate_limit": -1.0}, env={})
