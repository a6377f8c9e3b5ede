"""conftest.py LakeTemplates: a folder built once, then restored as first built, whatever a test did to it."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import LakeTemplates


def test_a_template_is_built_once_and_restored_in_its_own_folder(tmp_path: Path) -> None:
    built: list[Path] = []

    def build(folder: Path) -> None:
        built.append(folder)
        (folder / "lake").mkdir()
        (folder / "lake" / "catalog.db").write_bytes(b"tables")

    templates = LakeTemplates(tmp_path)
    first = templates.restore("t", build)
    (first / "lake" / "catalog.db").write_bytes(b"changed by a test")
    (first / "lake").rename(first / "moved")
    (first / "copy").mkdir()

    again = templates.restore("t", build)
    assert again == first and built == [first]  # the same folder (Iceberg's absolute paths), built once
    assert sorted(p.name for p in again.iterdir()) == ["lake"]
    assert (again / "lake" / "catalog.db").read_bytes() == b"tables"


def test_a_build_that_failed_is_tried_again_from_an_empty_folder(tmp_path: Path) -> None:
    calls: list[list[str]] = []

    def build(folder: Path) -> None:
        calls.append(sorted(p.name for p in folder.iterdir()))
        (folder / "half").write_text("")
        if len(calls) == 1:
            raise RuntimeError("the simulator went away")

    templates = LakeTemplates(tmp_path)
    with pytest.raises(RuntimeError):
        templates.restore("t", build)
    assert (templates.restore("t", build) / "half").exists()
    assert calls == [[], []]
