"""config.py: flags > environment > spotify-pipeline.toml > defaults, for each kind of setting, and secrets that
never show themselves (repr, str, describe, errors)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from spotify_pipeline.config import ENV_VARS, Secret, Settings, load_settings
from spotify_pipeline.errors import ConfigError

# One setting of each kind: (name, TOML literal, environment text, flag value, expected file/env/flag values).
KINDS = [
    ("lake", '"/from/file"', "/from/env", "/from/flag", ("/from/file", "/from/env", "/from/flag")),
    ("concurrency", "3", "5", 7, (3, 5, 7)),
    ("rate_limit", "1.5", "2.5", 3.5, (1.5, 2.5, 3.5)),
    ("enrich_ttl_days", "1", "2", 3.0, (1.0, 2.0, 3.0)),
    ("auth", '"client"', "user", "auto", ("client", "user", "auto")),
]


@pytest.fixture(autouse=True)
def _no_config_in_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """load_settings looks for spotify-pipeline.toml in the working directory: make that an empty folder."""
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)


def _config(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "spotify-pipeline.toml"
    path.write_text(body, encoding="utf-8")
    return path


@pytest.mark.parametrize(("name", "toml", "env", "flag", "expected"), KINDS, ids=[k[0] for k in KINDS])
def test_each_layer_wins_over_the_ones_below(
    tmp_path: Path, name: str, toml: str, env: str, flag: Any, expected: tuple[Any, Any, Any]
) -> None:
    default = getattr(Settings(), name)
    config = _config(tmp_path, f"[spotify_pipeline]\n{name} = {toml}\n")
    empty = tmp_path / "empty.toml"
    empty.write_text("", encoding="utf-8")
    environ = {ENV_VARS[name]: env}

    assert getattr(load_settings(env={}, config_file=empty), name) == default
    assert getattr(load_settings(env={}, config_file=config), name) == expected[0]
    assert getattr(load_settings(env=environ, config_file=config), name) == expected[1]
    assert getattr(load_settings({name: flag}, env=environ, config_file=config), name) == expected[2]
    # a flag left unset (None) does not hide the layers below it
    assert getattr(load_settings({name: None}, env=environ, config_file=config), name) == expected[1]
    # an empty environment variable counts as unset
    assert getattr(load_settings(env={ENV_VARS[name]: ""}, config_file=config), name) == expected[0]


def test_the_config_file_is_found_through_the_environment(tmp_path: Path) -> None:
    config = _config(tmp_path, "concurrency = 4\n")  # a top-level key works as well as the table
    assert load_settings(env={"SPOTIFY_PIPELINE_CONFIG": str(config)}).concurrency == 4


@pytest.mark.parametrize(
    ("name", "env", "expected"), [("memory_limit", "2 GB", "2GB"), ("transform_batch_bytes", "64", 64)]
)
def test_environment_only_settings_come_from_the_environment_and_flags(name: str, env: str, expected: Any) -> None:
    assert getattr(load_settings(env={ENV_VARS[name]: env}), name) == expected
    flag = "1GB" if name == "memory_limit" else 32
    assert getattr(load_settings({name: flag}, env={ENV_VARS[name]: env}), name) == flag


@pytest.mark.parametrize("name", ["memory_limit", "transform_batch_bytes"])
def test_environment_only_settings_in_the_file_are_refused(tmp_path: Path, name: str) -> None:
    config = _config(tmp_path, f'{name} = "64"\n')
    with pytest.raises(ConfigError, match=f"{name} in .*: the transform reads this setting from {ENV_VARS[name]}"):
        load_settings(env={}, config_file=config)


def test_a_bad_value_names_the_layer_it_came_from(tmp_path: Path) -> None:
    config = _config(tmp_path, "concurrency = 0\n")
    with pytest.raises(ConfigError, match=r"invalid concurrency: concurrency in .*spotify-pipeline.toml = 0"):
        load_settings(env={}, config_file=config)
    # a higher layer replaces the bad lower value before it is checked: only the winning value matters
    assert load_settings(env={"SPOTIFY_PIPELINE_CONCURRENCY": "2"}, config_file=config).concurrency == 2
    with pytest.raises(ConfigError, match=r"invalid concurrency: SPOTIFY_PIPELINE_CONCURRENCY = 'x'"):
        load_settings(env={"SPOTIFY_PIPELINE_CONCURRENCY": "x"})
    with pytest.raises(ConfigError, match=r"invalid concurrency: --concurrency = -1"):
        load_settings({"concurrency": -1}, env={"SPOTIFY_PIPELINE_CONCURRENCY": "2"})
    with pytest.raises(ConfigError, match="unknown setting 'concurency'"):
        load_settings(env={}, config_file=_config(tmp_path, "concurency = 2\n"))


SECRET = "s3cr3t-value-never-shown"


def test_the_client_secret_comes_from_flags_or_environment_and_never_shows() -> None:
    from_env = load_settings(env={"SPOTIFY_CLIENT_SECRET": SECRET})
    assert from_env.client_secret.reveal() == SECRET
    from_flag = load_settings({"client_secret": "flag-" + SECRET}, env={"SPOTIFY_CLIENT_SECRET": SECRET})
    assert from_flag.client_secret.reveal() == "flag-" + SECRET
    for settings in (from_env, from_flag):
        shown = [repr(settings), str(settings), repr(settings.describe()), str(settings.client_secret)]
        assert all(SECRET not in text for text in shown), shown
        assert settings.describe()["client_secret"] == "***"
    assert repr(Secret(SECRET)) == "Secret('***')"


def test_a_secret_in_the_config_file_is_refused_without_echoing_it(tmp_path: Path) -> None:
    config = _config(tmp_path, f'client_secret = "{SECRET}"\n')
    with pytest.raises(ConfigError) as refused:
        load_settings(env={}, config_file=config)
    assert "contains client_secret" in str(refused.value)
    assert SECRET not in str(refused.value) and SECRET not in str(refused.value.hint)


def test_an_error_in_another_setting_does_not_show_the_secret() -> None:
    with pytest.raises(ConfigError) as refused:
        load_settings({"concurrency": "many"}, env={"SPOTIFY_CLIENT_SECRET": SECRET})
    assert SECRET not in str(refused.value) + str(refused.value.hint)
