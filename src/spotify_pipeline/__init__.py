"""spotify-pipeline: Spotify Web API -> raw zone -> Iceberg tables -> SQL.

The library's one way in is `Lake` (docs/API.md):

    from spotify_pipeline import Lake

    lake = Lake.open("./lake")
    print([t.name for t in lake.tables()])
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = [
    "ApiError",
    "CheckOutcome",
    "CheckReport",
    "ColumnInfo",
    "ConfigError",
    "ExportResult",
    "ExtractResult",
    "InputError",
    "Lake",
    "LakeError",
    "PipelineError",
    "PlaylistCounts",
    "QualityError",
    "QueryError",
    "QueryResult",
    "ReportInfo",
    "RequestCounts",
    "RunInfo",
    "RunResult",
    "Settings",
    "TableInfo",
    "TransformSummary",
    "__version__",
    "load_settings",
]

# Loaded on first use, so `spotify-pipeline --help` does not import pyarrow, DuckDB and pyiceberg.
_MODULES = {
    "config": ("Settings", "load_settings"),
    "errors": ("ApiError", "ConfigError", "InputError", "LakeError", "PipelineError", "QualityError", "QueryError"),
    "lake_api": (
        "CheckOutcome",
        "CheckReport",
        "ColumnInfo",
        "ExportResult",
        "ExtractResult",
        "Lake",
        "PlaylistCounts",
        "ReportInfo",
        "RequestCounts",
        "RunInfo",
        "RunResult",
        "TableInfo",
        "TransformSummary",
    ),
    "query": ("QueryResult",),
}
_LAZY = {name: module for module, names in _MODULES.items() for name in names}

if TYPE_CHECKING:
    from .config import Settings, load_settings
    from .errors import ApiError, ConfigError, InputError, LakeError, PipelineError, QualityError, QueryError
    from .lake_api import (
        CheckOutcome,
        CheckReport,
        ColumnInfo,
        ExportResult,
        ExtractResult,
        Lake,
        PlaylistCounts,
        ReportInfo,
        RequestCounts,
        RunInfo,
        RunResult,
        TableInfo,
        TransformSummary,
    )
    from .query import QueryResult


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
