"""Settings in one place: flags > environment > config file > defaults. Secrets are masked when shown."""

from __future__ import annotations

import math
import os
import re
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from .errors import ConfigError

DEFAULT_API_URL = "https://api.spotify.com/v1"
DEFAULT_ACCOUNTS_URL = "https://accounts.spotify.com"
DEFAULT_TRANSFORM_BATCH_BYTES = 1024 * 1024 * 1024
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


# Settings the transform reads from the environment itself (they are checked here, with the others, so a
# bad value is refused before any request); a config file cannot set them.
ENV_ONLY = frozenset({"transform_batch_bytes", "memory_limit"})
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
        ("track_budget", "SPOTIFY_PIPELINE_TRACK_BUDGET"),
        ("raw_part_bytes", "SPOTIFY_PIPELINE_RAW_PART_BYTES"),
        ("transform_batch_bytes", "SPOTIFY_PIPELINE_TRANSFORM_BATCH_BYTES"),
        ("memory_limit", "SPOTIFY_PIPELINE_MEMORY_LIMIT"),
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
    # Table snapshots kept for time travel/rollback (negative keeps all). 6 hours: every byte a run or a
    # `maintain` replaces stays while a kept snapshot reads it, so a week (7, before) of hourly runs kept a week
    # of old copies; 6 hours is what the lake within 1.5x its tables needs (docs/BENCHMARKS.md).
    table_history_days: float = 0.25
    page_size: int = 100
    track_budget: int = 200  # /tracks requests per run for listened songs without album/artist; 0 = none
    raw_part_bytes: int = 8 * 1024 * 1024  # uncompressed bytes per raw part file (and per checkpoint)
    transform_batch_bytes: int = DEFAULT_TRANSFORM_BATCH_BYTES  # raw JSON parsed per transform batch
    memory_limit: str = ""  # DuckDB's memory cap for the transform, e.g. 1500MB; empty = DuckDB's default
    auth: str = "auto"  # auto (the saved user login if there is one, else client credentials) | client | user
    login_secret: str = ""  # a Secrets Manager secret holding the user login (on AWS) instead of the file
    glue_database: str = "spotify"  # the Glue database of an s3:// lake's tables
    athena_workgroup: str = "primary"
    athena_output: str = ""  # s3:// location for Athena results; default: <lake>/athena-results/

    def __post_init__(self) -> None:
        """Settings built directly (not by `load_settings`) are checked too."""
        for name, rule in RULES.items():
            if rule.problem(getattr(self, name))[1] is not None:
                _coerce(name, getattr(self, name), f"Settings({name}=...)")  # raises, saying why
        if self.memory_limit:
            parse_memory_limit(self.memory_limit, "Settings(memory_limit=...)")

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


@dataclass(frozen=True)
class _Rule:
    """What a numeric setting accepts: its type, its bounds, and the advice an error gives."""

    kind: str  # int | float
    advice: str
    minimum: float | None = None  # inclusive
    above: float | None = None  # exclusive lower bound
    maximum: float | None = None

    def problem(self, raw: Any) -> tuple[Any, str | None]:
        """(the value, None) if `raw` is acceptable, else (None, what is wrong with it)."""
        if isinstance(raw, bool) or not isinstance(raw, (int, float, str)):
            return None, "is not a number"
        value: int | float
        try:
            if self.kind == "int":
                if isinstance(raw, float):
                    return None, "is not a whole number"
                value = int(raw.strip()) if isinstance(raw, str) else raw
            else:
                value = float(raw.strip()) if isinstance(raw, str) else float(raw)
        except ValueError:
            return None, "is not a whole number" if self.kind == "int" else "is not a number"
        if not math.isfinite(value):
            return None, "is not a finite number"
        if self.minimum is not None and value < self.minimum:
            return None, f"is below {self.minimum:g}"
        if self.above is not None and value <= self.above:
            return None, f"is not above {self.above:g}"
        if self.maximum is not None and value > self.maximum:
            return None, f"is above {self.maximum:g}"
        return value, None


# Every numeric setting, checked when settings are built: before any request, any file, any table.
RULES: dict[str, _Rule] = {
    "concurrency": _Rule("int", "a whole number of parallel requests, at least 1, e.g. 8", minimum=1),
    "rate_limit": _Rule("float", "requests per second, 0 or more; 0 means no client-side limit", minimum=0),
    "max_retry_wait": _Rule("float", "seconds, 0 or more, e.g. 120", minimum=0),
    "max_retries": _Rule("int", "a whole number, 0 or more, e.g. 6", minimum=0),
    "timeout": _Rule("float", "seconds, more than 0, e.g. 30", above=0),
    "enrich_ttl_days": _Rule("float", "days, 0 or more, e.g. 7", minimum=0),
    "table_history_days": _Rule("float", "days, e.g. 0.25 (6 hours) or 7; a negative number keeps every snapshot"),
    "track_budget": _Rule("int", "a whole number of requests per run, 0 or more, e.g. 200", minimum=0),
    "page_size": _Rule("int", "a whole number from 1 to 100", minimum=1, maximum=100),
    "raw_part_bytes": _Rule("int", "a whole number of bytes, at least 1, e.g. 8388608 for 8 MiB", minimum=1),
    "transform_batch_bytes": _Rule(
        "int", "a whole number of bytes, at least 1, e.g. 1073741824 for 1 GiB, or unset it", minimum=1
    ),
}
# The flag of each setting that has one (the others are `--name-with-dashes` when given by a caller).
FLAGS = {"enrich_ttl_days": "--enrich-ttl"}
_MEMORY = re.compile(r"(\d+(?:\.\d+)?)\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)", re.IGNORECASE)


def parse_memory_limit(text: str, source: str = "SPOTIFY_PIPELINE_MEMORY_LIMIT") -> str:
    """A DuckDB memory size (`1500MB`, `2GB`, `1.5GiB`, `512 MiB`), checked and normalised (`512MiB`); ""
    means DuckDB's default. Digits and a unit only, so the result is safe in `SET memory_limit = '...'`."""
    if not text.strip():
        return ""
    match = _MEMORY.fullmatch(text.strip())
    if match is None or float(match[1]) <= 0:
        raise ConfigError(
            f"invalid memory_limit: {source} = {text!r} is not a memory size",
            hint="use a size such as 1500MB, 2GB or 1.5GiB (units B, KB, MB, GB, TB, KiB, MiB, GiB, TiB), or unset it",
        )
    return f"{match[1]}{match[2]}"


def parse_batch_bytes(text: str, source: str = "SPOTIFY_PIPELINE_TRANSFORM_BATCH_BYTES") -> int:
    """The transform's batch size in bytes from its text; "" means the default."""
    return int(_coerce("transform_batch_bytes", text, source)) if text.strip() else DEFAULT_TRANSFORM_BATCH_BYTES


def _coerce(name: str, raw: Any, source: str) -> Any:
    """`raw` (from `source`: a flag, an environment variable or a config file key) as the setting's type,
    checked; a ConfigError naming the setting, where it came from, the value and what to use otherwise."""
    kind = {f.name: f.type for f in fields(Settings)}[name]
    if name in RULES:
        value, problem = RULES[name].problem(raw)
        if problem is not None:
            raise ConfigError(f"invalid {name}: {source} = {raw!r} {problem}", hint=f"use {RULES[name].advice}")
        return value
    if name == "memory_limit":
        return parse_memory_limit(str(raw), source)
    if kind == "Secret":
        return raw if isinstance(raw, Secret) else Secret(str(raw))
    return str(raw)


def load_settings(
    overrides: dict[str, Any] | None = None,
    *,
    env: dict[str, str] | None = None,
    config_file: Path | None = None,
) -> Settings:
    """Merge flags (`overrides`, None values ignored) > environment > config file > defaults."""
    environ = os.environ if env is None else env
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}  # where each value came from, for error messages
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
            if key in ENV_ONLY:
                raise ConfigError(
                    f"{key} in {path}: the transform reads this setting from {ENV_VARS[key]} only",
                    hint=f"set {ENV_VARS[key]} instead",
                )
            values[key], sources[key] = value, f"{key} in {path}"
    for name, var in ENV_VARS.items():
        if environ.get(var):
            values[name], sources[name] = environ[var], var
    if "lake" not in values and environ.get("S3_BUCKET_NAME"):  # the original design's variable
        values["lake"] = f"s3://{environ['S3_BUCKET_NAME']}/lake"
    for name, value in (overrides or {}).items():
        if value is not None:
            values[name], sources[name] = value, FLAGS.get(name, "--" + name.replace("_", "-"))
    settings = replace(Settings(), **{k: _coerce(k, v, sources.get(k, k)) for k, v in values.items()})
    if settings.auth not in ("auto", "client", "user"):
        raise ConfigError(f"invalid auth {settings.auth!r}", hint="use auto, client or user")
    return settings
