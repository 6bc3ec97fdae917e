"""What is clustered: the cached embedding chunks through the fitted PCA (the index's
vectors before α-DBA), plus the source's metadata and the images that failed to decode."""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np

from logosim.core.store import ArtifactStore, Manifest
from logosim.data.sources import SourceSpec, open_source
from logosim.search.evaluate import indexed_vectors


@dataclass
class Vectors:
    ids: list[str]
    x: np.ndarray  # (n, d) unit vectors, float32


def load_vectors(store: ArtifactStore, embeddings: list[Manifest], pca: Manifest | None) -> Vectors:
    """Every embedded image's descriptor, in the source's order (checksums verified)."""
    try:
        ids, x = indexed_vectors(store, embeddings, pca)
    except ValueError:  # no embeddings: the caller reports "nothing to cluster"
        return Vectors([], np.zeros((0, 1), np.float32))
    return Vectors(ids, np.ascontiguousarray(x, dtype=np.float32))


@dataclass
class Metadata:
    """Per image of the source: group, text and the other metadata columns."""

    ids: list[str]
    groups: dict[str, str]
    columns: dict[str, dict[str, object]]  # id → {column: value}
    refs: dict[str, str]


def read_metadata(source: SourceSpec) -> Metadata:
    """One metadata pass over the source (no image bytes)."""
    ids: list[str] = []
    groups: dict[str, str] = {}
    columns: dict[str, dict[str, object]] = {}
    refs: dict[str, str] = {}
    for record in open_source(source).records(with_bytes=False):
        ids.append(record.id)
        refs[record.id] = record.ref
        if record.group:
            groups[record.id] = record.group
        row: dict[str, object] = {}
        if record.group is not None:
            row["group"] = record.group
        if record.text:
            row["text"] = record.text
        if record.vienna_codes:
            row["vienna_codes"] = " ".join(record.vienna_codes)
        if record.year is not None:
            row["year"] = record.year
        for key, value in record.extra.items():
            row[key] = value if isinstance(value, str | int | float | bool) else json.dumps(value)
        columns[record.id] = row
    return Metadata(ids, groups, columns, refs)


def failed_images(
    store: ArtifactStore, source_ids: list[str], embedded: list[str]
) -> list[dict[str, str]]:
    """Images of the source with no embedding (failed decodes), with the recorded reason."""
    have = set(embedded)
    missing = [i for i in source_ids if i not in have]
    if not missing:
        return []
    reasons: dict[str, str] = {}
    root = store.path("errors/embed")
    for file in sorted(root.glob("*.jsonl")) if root.exists() else []:
        for line in file.read_text(encoding="utf-8").splitlines():
            if line.strip():
                item = json.loads(line)
                reasons[item.get("id", "")] = item.get("reason", "")
    return [{"id": i, "reason": reasons.get(i, "not embedded")} for i in missing]
