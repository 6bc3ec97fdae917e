"""Extraction results ↔ Parquet.

The file is a valid ``--source`` for build, cluster and evaluate: ``id`` (the input line: a
domain, or a URL) is the
id column and ``logo`` (PNG bytes, null when failed) the first binary column, which
``ParquetSource`` picks as the image; every other column travels as metadata. Failed rows
stay in the file (``status``/``reason``): build records them as unreadable, nothing is lost.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from logosim.web.extract import DomainResult

SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("domain", pa.string()),
        ("page_url", pa.string()),
        ("status", pa.string()),  # ok | failed
        ("reason", pa.string()),  # extract.REASONS, empty when ok
        ("detail", pa.string()),
        ("logo", pa.binary()),  # PNG, longest side at most 512
        ("logo_url", pa.string()),  # absolute URL; "data:<mime>," for a data URI; "" inline SVG
        ("source", pa.string()),  # candidates.SOURCES
        ("score", pa.float64()),
        ("width", pa.int32()),  # of the image as found (before the 512 px cap)
        ("height", pa.int32()),
        ("heuristics", pa.string()),  # the signals that scored the winner
        ("icon", pa.binary()),  # the best plain icon, PNG
        ("icon_url", pa.string()),
        ("icon_source", pa.string()),
        ("candidates", pa.int32()),
        ("seconds", pa.float64()),
    ]
)
_FIELDS = SCHEMA.names


def results_table(results: Iterable[DomainResult]) -> pa.Table:
    rows = [
        {name: getattr(r, name) for name in _FIELDS} | {"id": r.id or r.domain} for r in results
    ]
    return pa.Table.from_pylist(rows, schema=SCHEMA)


def write_results(path: Path, results: Iterable[DomainResult]) -> None:
    pq.write_table(results_table(results), path, row_group_size=256)


def read_results(path: Path) -> list[DomainResult]:
    table = pq.read_table(path, schema=SCHEMA)
    return [DomainResult(**{name: row[name] for name in _FIELDS}) for row in table.to_pylist()]


def concat_results(paths: Iterable[Path], out: Path) -> int:
    """Append chunk files into one Parquet at ``out`` (a temporary path), row group by row
    group, so memory holds one chunk at a time. Returns the row count."""
    rows = 0
    with pq.ParquetWriter(out, SCHEMA) as writer:
        for path in paths:
            table = pq.read_table(path, schema=SCHEMA)
            writer.write_table(table, row_group_size=256)
            rows += table.num_rows
    return rows
