"""The lake: where raw API responses and table files live (a local folder now; S3 later)."""

from .layout import manifest_key, raw_part_key, raw_prefix
from .raw import RawRecord, RawZoneReader, RawZoneWriter
from .storage import LocalStorage, Storage, open_storage

__all__ = [
    "LocalStorage",
    "RawRecord",
    "RawZoneReader",
    "RawZoneWriter",
    "Storage",
    "manifest_key",
    "open_storage",
    "raw_part_key",
    "raw_prefix",
]
