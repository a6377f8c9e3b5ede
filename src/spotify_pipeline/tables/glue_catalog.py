"""The catalog of a lake on S3: tables registered in AWS Glue, the same tables, columns and merge logic as
the embedded catalog (catalog.py), which it extends."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import LakeError
from ..lake.layout import WAREHOUSE_DIR
from .catalog import Catalog, library_loaded
from .catalog_db import NAMESPACE


class GlueCatalog(Catalog):
    """Tables registered in AWS Glue, data in the lake's S3 prefix: what Athena reads natively.
    Same table names, columns and merge logic as the embedded catalog."""

    remote = True

    def __init__(self, lake_uri: str, database: str = NAMESPACE) -> None:
        from ..lake.s3 import aws_endpoint

        self.root = Path("/nonexistent-s3-lake")
        self.location = lake_uri.rstrip("/")
        self.namespace = database
        self._endpoint = aws_endpoint()
        self._catalog = None
        self._loaded = {}
        self._planned = {}
        self._checked = True  # moving an S3 prefix is not detected (docs/ARCHITECTURE.md)

    @property
    def warehouse_uri(self) -> str:
        return f"{self.location}/{WAREHOUSE_DIR}"

    def owns(self, path: str) -> bool:
        return path.startswith(self.warehouse_uri + "/")

    @property
    def iceberg(self) -> Any:
        if self._catalog is None:
            import os

            library_loaded()
            from pyiceberg.catalog.glue import GlueCatalog as IcebergGlue

            props: dict[str, str] = {"warehouse": self.warehouse_uri}
            region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
            if region:
                props.update({"glue.region": region, "s3.region": region})
            if self._endpoint:
                props.update({"glue.endpoint": self._endpoint, "s3.endpoint": self._endpoint})
            try:
                self._catalog = IcebergGlue("glue", **props)
                if (self.namespace,) not in self._catalog.list_namespaces():
                    self._catalog.create_namespace(
                        self.namespace, {"location": f"{self.location}/{WAREHOUSE_DIR}/{self.namespace}.db"}
                    )
            except Exception as exc:  # boto3/pyiceberg raise many types for an unreachable catalog
                raise LakeError(
                    f"cannot open the Glue catalog (database {self.namespace}): {exc}",
                    hint="check the AWS credentials, region and IAM permissions",
                ) from exc
        return self._catalog

    def exists(self) -> bool:
        try:
            return bool(self.iceberg.list_tables(self.namespace))
        except LakeError:
            return False

    def metadata_locations(self) -> dict[str, str]:
        """Each Glue table's `metadata_location` parameter, from one paginated GetTables."""
        pages = self.iceberg.glue.get_paginator("get_tables").paginate(DatabaseName=self.namespace)
        return {
            table["Name"]: table.get("Parameters", {}).get("metadata_location", "")
            for page in pages
            for table in page["TableList"]
        }

    def free_bytes(self) -> int:
        return 2**62  # S3 does not fill up
