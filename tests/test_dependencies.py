"""Reproducible installs: the lock files pin what pyproject.toml allows, and a private API we call is bounded."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]

# Private (underscore) names of a library the code imports, and the newest minor series they were checked
# against: the requirement must stay below the next one until the code stops using them.
PRIVATE_APIS = {
    ("pyiceberg", "_dataframe_to_data_files"): "0.13",
}


def requirements(name: str) -> list[str]:
    every = PYPROJECT["dependencies"] + [r for extra in PYPROJECT["optional-dependencies"].values() for r in extra]
    return [r for r in every if re.match(rf"{re.escape(name)}\b(?!-)", r)]


def pins(lock: str) -> dict[str, str]:
    text = (ROOT / lock).read_text(encoding="utf-8")
    return dict(re.findall(r"^([A-Za-z0-9_.-]+)==(\S+)", text, flags=re.MULTILINE))


def test_every_private_api_we_use_has_an_upper_bound() -> None:
    source = "\n".join(p.read_text(encoding="utf-8") for p in (ROOT / "src").rglob("*.py"))
    for (library, name), ceiling in PRIVATE_APIS.items():
        if not re.search(rf"from {library}[\w.]* import [^\n]*\b{name}\b", source):
            continue  # no longer used: the bound may go
        found = requirements(library)
        assert found, library
        for requirement in found:
            assert f"<{ceiling}" in requirement, f"{requirement!r}: the code imports {library}'s private {name}"


def test_no_other_private_import_from_a_dependency_is_unbounded() -> None:
    """A new `from lib import _private` must be added to PRIVATE_APIS (with a bound in pyproject.toml)."""
    source = "\n".join(p.read_text(encoding="utf-8") for p in (ROOT / "src").rglob("*.py"))
    used = {
        (module.split(".")[0], name)
        for module, names in re.findall(r"^\s*from ([a-z]\w*(?:\.\w+)*) import ([^\n(]+)", source, flags=re.MULTILINE)
        if not module.startswith("spotify_pipeline")
        for name in re.findall(r"\b(_[a-z]\w*)", names)
    }
    assert used <= set(PRIVATE_APIS), used - set(PRIVATE_APIS)


def test_lock_files_pin_every_dependency_within_the_declared_ranges() -> None:
    from packaging.requirements import Requirement

    for lock, groups in (
        ("requirements.lock", ["reports", "aws", "test", "dev"]),
        ("requirements-lambda.lock", ["aws"]),
    ):
        pinned = {name.lower().replace("_", "-"): version for name, version in pins(lock).items()}
        declared = PYPROJECT["dependencies"] + [r for g in groups for r in PYPROJECT["optional-dependencies"][g]]
        for text in declared:
            requirement = Requirement(text)
            name = requirement.name.lower().replace("_", "-")
            assert name in pinned, f"{lock} does not pin {name} (run `make lock`)"
            assert requirement.specifier.contains(pinned[name]), f"{lock}: {name}=={pinned[name]} vs {text}"


def test_make_and_the_lambda_image_install_from_the_lock_files() -> None:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert "-r $(LOCK)" in makefile and "--no-deps -e ." in makefile
    assert "-r $(LAMBDA_LOCK)" in makefile
    dockerfile = (ROOT / "infra" / "Dockerfile").read_text(encoding="utf-8")
    assert "-r " in dockerfile and "requirements-lambda.lock" in dockerfile and "--no-deps" in dockerfile
