"""Loading a sales file into the registry: validate it whole, then write all rows or none."""

from __future__ import annotations

from pathlib import Path

from storage.catalog import Catalog
from storage.sales import IngestSummary, ingest_sales, read_sales_csv


def ingest_file(catalog: Catalog, path: Path, *, replace: bool = False) -> IngestSummary:
    """Validate `path` and load it in one transaction; a rejected file loads nothing."""
    sales, sha256 = read_sales_csv(path)
    with catalog.unit_of_work() as session:
        return ingest_sales(session, sales, source=str(path), sha256=sha256, replace=replace)


def describe_ingest(summary: IngestSummary) -> str:
    return (f"{summary.source}: {summary.rows_in_file:,} rows: {summary.rows_inserted:,} inserted, "
            f"{summary.rows_replaced:,} replaced, {summary.rows_unchanged:,} already present")
