"""Docs that must stay true: the schema page matches the table contract."""

from __future__ import annotations

import re
from pathlib import Path

from spotify_pipeline.tables import TABLES

DOCS = Path(__file__).resolve().parents[1] / "docs"


def documented_tables() -> dict[str, list[str]]:
    text = (DOCS / "SCHEMA.md").read_text(encoding="utf-8")
    tables: dict[str, list[str]] = {}
    current = None
    for line in text.splitlines():
        heading = re.match(r"^## (\w+)$", line)
        if heading:
            current = heading.group(1)
            tables[current] = []
            continue
        row = re.match(r"^\| (\w+) \| ", line)
        if current and row and row.group(1) != "column":
            tables[current].append(row.group(1))
    return tables


def test_schema_page_documents_every_table_and_column() -> None:
    documented = documented_tables()
    assert set(documented) == set(TABLES)
    for name, spec in TABLES.items():
        assert documented[name] == spec.schema.names, name
