"""What many tests build for themselves: demo subsets and embedding chunk files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from logosim.core.store import ArtifactStore, Manifest
from logosim.demo import DEMO_PARQUET


def demo_rows(grouped: int, others: int, skip_others: int = 0) -> pa.Table:
    """The first ``grouped`` demo logos that have a known-similar group (so splits and
    evaluation have pairs), then ``others`` distractors (after skipping ``skip_others``)."""
    table = pq.read_table(DEMO_PARQUET)
    has_group = pc.not_equal(table["group"], "")
    return pa.concat_tables(
        [
            table.filter(has_group).slice(0, grouped),
            table.filter(pc.invert(has_group)).slice(skip_others, others),
        ]
    )


def write_demo_subset(path: Path, grouped: int, others: int) -> Path:
    pq.write_table(demo_rows(grouped, others), path)
    return path


def write_rows_chunk(store: ArtifactStore, rows: list[dict], features: np.ndarray) -> Manifest:
    """One embedding chunk holding ``features`` under the ids of ``rows``."""
    return store.write_arrays(
        "embeddings/test.npz",
        {
            "ids": np.array([r["id"] for r in rows]),
            "embeddings": features,
            "rows": np.arange(len(rows)),
        },
        kind="embeddings",
        rows=len(rows),
    )


def write_embedding_chunks(
    store: ArtifactStore, features: np.ndarray, size: int, prefix: str = "e"
) -> list[Manifest]:
    """``features`` as embedding chunk files of ``size`` rows, ids ``<prefix><row>``."""
    manifests = []
    for n, start in enumerate(range(0, len(features), size)):
        part = features[start : start + size]
        ids = np.array([f"{prefix}{i}" for i in range(start, start + len(part))])
        manifests.append(
            store.write_arrays(
                f"embeddings/{prefix}-{n}.npz",
                {"ids": ids, "embeddings": part, "rows": np.arange(start, start + len(part))},
                kind="embeddings",
                rows=len(part),
            )
        )
    return manifests
