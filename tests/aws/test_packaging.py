"""Does the Lambda code fit a zip deployment (250 MB unzipped)? Measured from the installed distributions
of spotify-pipeline[aws] and everything they require; when it does not fit, every function must ship as
a container image (10 GB), built from infra/Dockerfile."""

from __future__ import annotations

import re
from importlib import metadata
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
ZIP_LIMIT = 250 * 1024 * 1024
IMAGE_LIMIT = 10 * 1024**3


def closure(name: str, extras: tuple[str, ...] = ()) -> set[str]:
    seen: set[str] = set()
    todo = [(name, extras)]
    while todo:
        dist_name, wanted = todo.pop()
        key = dist_name.lower().replace("_", "-")
        if key in seen:
            continue
        try:
            dist = metadata.distribution(dist_name)
        except metadata.PackageNotFoundError:
            continue
        seen.add(key)
        for req in dist.requires or []:
            spec, _, marker = req.partition(";")
            extra = re.search(r"extra\s*==\s*['\"]([^'\"]+)['\"]", marker)
            if extra and extra.group(1) not in wanted:
                continue
            if marker.strip() and not extra and ("sys_platform" in marker and "win32" in marker):
                continue
            req_name = re.split(r"[\s<>=!~\[(;]", spec.strip(), maxsplit=1)[0]
            req_extras = tuple(re.findall(r"\[([^\]]+)\]", spec)[0].split(",")) if "[" in spec else ()
            todo.append((req_name, req_extras))
    return seen


def installed_size(names: set[str]) -> int:
    total = 0
    for name in names:
        dist = metadata.distribution(name)
        for file in dist.files or []:
            path = Path(str(dist.locate_file(file)))
            if path.is_file():
                total += path.stat().st_size
    return total


def test_lambda_packaging_fits_its_limit() -> None:
    names = closure("spotify-pipeline", ("aws",)) - {"spotify-pipeline"}
    assert {"duckdb", "pyarrow", "pyiceberg", "boto3", "aws-lambda-powertools"} <= names
    size = installed_size(names)
    template = yaml.load((ROOT / "infra" / "template.yaml").read_text(), Loader=yaml.BaseLoader)
    functions = {n: r for n, r in template["Resources"].items() if r["Type"] == "AWS::Serverless::Function"}
    assert len(functions) == 5  # plan, extract, transform, recently played, maintenance
    if size > ZIP_LIMIT:
        assert all(f["Properties"]["PackageType"] == "Image" for f in functions.values())
        assert (ROOT / "infra" / "Dockerfile").exists()
        assert size < IMAGE_LIMIT
    else:
        assert all(f["Properties"].get("PackageType", "Zip") == "Zip" for f in functions.values())
    print(f"runtime dependencies: {size / 2**20:.0f} MiB unzipped ({len(names)} distributions)")


def test_the_transform_lambda_caps_duckdb_below_its_memory() -> None:
    # DuckDB's default limit is 80% of what it sees as RAM; Python, Arrow and publishing need ~0.9 GB on top
    # of the cap (measured), so the transform function must set a cap that leaves that room.
    template = yaml.load((ROOT / "infra" / "template.yaml").read_text(), Loader=yaml.BaseLoader)
    transform = template["Resources"]["TransformFunction"]["Properties"]
    cap = transform["Environment"]["Variables"]["SPOTIFY_PIPELINE_MEMORY_LIMIT"]
    assert cap.endswith("GB")
    assert float(cap[:-2]) * 1000 + 900 < int(transform["MemorySize"])


def test_every_function_runs_a_handler_that_exists() -> None:
    from spotify_pipeline.aws import handlers

    template = yaml.load((ROOT / "infra" / "template.yaml").read_text(), Loader=yaml.BaseLoader)
    functions = {n: r for n, r in template["Resources"].items() if r["Type"] == "AWS::Serverless::Function"}
    for name, function in functions.items():
        (command,) = function["Properties"]["ImageConfig"]["Command"]
        module, _, handler = command.rpartition(".")
        assert module == "spotify_pipeline.aws.handlers" and callable(getattr(handlers, handler, None)), name
    maintenance = functions["MaintenanceFunction"]["Properties"]["Events"]["Schedule"]
    assert maintenance["Type"] == "ScheduleV2"
