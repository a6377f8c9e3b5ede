"""Settings in one place: flags > environment > config file > defaults. Secrets are masked when shown."""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from .errors import ConfigError

DEFAULT_API_URL = "https://api.spotify.com/v1"
DEFAULT_ACCOUNTS_URL = "https://accounts.spotify.com"
CONFIG_FILE_NAME = "spotify-pipeline.toml"


class Secret:
    """A string that never shows itself: repr and str are `***`; `.reveal()` is the only way in."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    def __str__(self) -> str:
        return "***"

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


# Environment variable for each setting that has one.
ENV_VARS = dict(
    [
        ("lake", "SPOTIFY_PIPELINE_LAKE"),
        ("api_url", "SPOTIFY_API_URL"),
        ("accounts_url", "SPOTIFY_ACCOUNTS_URL"),
        ("client_id", "SPOTIFY_CLIENT_ID"),
        ("client_secret", "SPOTIFY_CLIENT_SECRET"),
        ("concurrency", "SPOTIFY_PIPELINE_CONCURRENCY"),
        ("rate_limit", "SPOTIFY_PIPELINE_RATE_LIMIT"),
        ("max_retry_wait", "SPOTIFY_PIPELINE_MAX_RETRY_WAIT"),
        ("enrich_ttl_days", "SPOTIFY_PIPELINE_ENRICH_TTL_DAYS"),
        ("table_history_days", "SPOTIFY_PIPELINE_TABLE_HISTORY_DAYS"),
        ("raw_part_bytes", "SPOTIFY_PIPELINE_RAW_PART_BYTES"),
        ("auth", "SPOTIFY_PIPELINE_AUTH"),
        ("login_secret", "SPOTIFY_PIPELINE_LOGIN_SECRET"),
        ("glue_database", "SPOTIFY_PIPELINE_GLUE_DATABASE"),
        ("athena_workgroup", "SPOTIFY_PIPELINE_ATHENA_WORKGROUP"),
        ("athena_output", "SPOTIFY_PIPELINE_ATHENA_OUTPUT"),
    ]
)


@dataclass(frozen=True)
class Settings:
    """Everything a run needs to know. Build with `load_settings`."""

    lake: str = "./lake"
    api_url: str = DEFAULT_API_URL
    accounts_url: str = DEFAULT_ACCOUNTS_URL
    client_id: str = ""
    client_secret: Secret = field(default_factory=lambda: Secret(""))
    concurrency: int = 8
    rate_limit: float = 0.0  # requests per second across the run; 0 = no client-side limit
    max_retry_wait: float = 120.0
    max_retries: int = 6
    timeout: float = 30.0
    enrich_ttl_days: float = 7.0
    table_history_days: float = 7.0  # table snapshots kept for time travel/rollback; negative keeps all
    page_size: int = 100
    raw_part_bytes: int = 8 * 1024 * 1024  # uncompressed bytes per raw part file (and per checkpoint)
    auth: str = "auto"  # auto (the saved user login if there is one, else client credentials) | client | user
    login_secret: str = ""  # a Secrets Manager secret holding the user login (on AWS) instead of the file
    glue_database: str = "spotify"  # the Glue database of an s3:// lake's tables
    athena_workgroup: str = "primary"
    athena_output: str = ""  # s3:// location for Athena results; default: <lake>/athena-results/

    def require_credentials(self) -> None:
        if not self.client_id or not self.client_secret:
            raise ConfigError(
                "Spotify credentials are missing",
                hint="set SPOTIFY_CLIENT_ID and SPOTIFY_CLIENT_SECRET (or run `spotify-pipeline demo`, "
                "which needs none)",
            )

    def describe(self) -> dict[str, str]:
        """For display: every setting, secrets masked."""
        return {f.name: str(getattr(self, f.name)) for f in fields(self)}


def _coerce(name: str, raw: Any) -> Any:
    kind = {f.name: f.type for f in fields(Settings)}[name]
    try:
        if kind == "int":
            return int(raw)
        if kind == "float":
            return float(raw)
        if kind == "Secret":
            return raw if isinstance(raw, Secret) else Secret(str(raw))
        return str(raw)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"invalid value for {name}: {raw!r}", hint=f"{name} must be a {kind}") from exc


def load_settings(
    overrides: dict[str, Any] | None = None,
    *,
    env: dict[str, str] | None = None,
    config_file: Path | None = None,
) -> Settings:
    """Merge flags (`overrides`, None values ignored) > environment > config file > defaults."""
    environ = os.environ if env is None else env
    values: dict[str, Any] = {}
    path = config_file or Path(environ.get("SPOTIFY_PIPELINE_CONFIG", CONFIG_FILE_NAME))
    if config_file is not None and not path.exists():
        raise ConfigError(f"config file not found: {path}", hint="check the --config path")
    if path.exists():
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"cannot read config file {path}: {exc}", hint="fix the TOML syntax") from exc
        known = {f.name for f in fields(Settings)}
        for key, value in data.get("spotify_pipeline", data).items():
            if key in ("client_secret",):
                raise ConfigError(
                    f"{path} contains client_secret",
                    hint="keep secrets in SPOTIFY_CLIENT_SECRET, not in files",
                )
            if key not in known:
                raise ConfigError(f"unknown setting {key!r} in {path}", hint=f"known: {', '.join(sorted(known))}")
            values[key] = value
    for name, var in ENV_VARS.items():
        if environ.get(var):
            values[name] = environ[var]
    if "lake" not in values and environ.get("S3_BUCKET_NAME"):  # the original design's variable
        values["lake"] = f"s3://{environ['S3_BUCKET_NAME']}/lake"
    if name_override := (overrides or {}):
        values.update({k: v for k, v in name_override.items() if v is not None})
    settings = replace(Settings(), **{k: _coerce(k, v) for k, v in values.items()})
    if settings.concurrency < 1:
        raise ConfigError("concurrency must be at least 1")
    if settings.auth not in ("auto", "client", "user"):
        raise ConfigError(f"invalid auth {settings.auth!r}", hint="use auto, client or user")
    return settings
