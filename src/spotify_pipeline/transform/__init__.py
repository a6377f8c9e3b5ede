"""Transform: raw zone -> normalized rows (set-based SQL in DuckDB) -> idempotent merge into Iceberg tables."""

from .runner import TransformResult, transform

__all__ = ["TransformResult", "transform"]
