"""Evaluation of an index build: leave-one-out metrics over a source with known groups.

The vectors evaluated are read back from the index (after PCA and α-DBA, exactly as
stored) and searched exactly, so the figures measure the descriptor, not the ANN
approximation (whose recall is reported at build time). Queries are the indexed images
themselves, so no α-query expansion applies.
"""

from __future__ import annotations

import time

import numpy as np
from loguru import logger

from logosim.core.store import ArtifactStore, Manifest
from logosim.data.sources import SourceSpec, open_source
from logosim.embed.pca import Descriptors, iter_embeddings
from logosim.index.logo_index import LogoIndex
from logosim.search.metrics import METRIC_KEYS, leave_one_out, pair_recall

METRICS_FILE = "eval/metrics.json"
EVAL_VERSION = "2"  # 2: the index's stored vectors (α-DBA) instead of chunks through PCA
PAIRS_FILE = "eval/pairs_val.json"


def source_groups(source: SourceSpec) -> dict[str, str]:
    """id → group for every record with a group (a metadata pass, no image bytes)."""
    return {r.id: r.group for r in open_source(source).records(with_bytes=False) if r.group}


def indexed_vectors(
    store: ArtifactStore, embeddings: list[Manifest], pca: Manifest | None
) -> tuple[list[str], np.ndarray]:
    """Descriptors of the embedding chunks through PCA: the index's vectors before α-DBA."""
    describe = Descriptors.load(store, pca)
    ids: list[str] = []
    blocks: list[np.ndarray] = []
    for chunk_ids, features in iter_embeddings(store, embeddings):
        if len(chunk_ids):
            ids.extend(chunk_ids.tolist())
            blocks.append(describe(features))
    if not blocks:
        raise ValueError("nothing to evaluate: no embeddings")
    return ids, np.concatenate(blocks)


def stored_vectors(store: ArtifactStore, index: Manifest) -> tuple[list[str], np.ndarray]:
    """The live vectors of the index, as searched (ids in insertion order)."""
    loaded = LogoIndex.load(store)
    if loaded.manifest.sha256 != index.sha256:
        raise ValueError(f"{index.path} changed since this build: evaluate the current one")
    ids: list[str] = []
    blocks: list[np.ndarray] = []
    for part_ids, vectors in loaded.live_vectors():
        ids.extend(part_ids)
        blocks.append(vectors)
    if not ids:
        raise ValueError("nothing to evaluate: the index is empty")
    return ids, np.concatenate(blocks)


def evaluate_build(store: ArtifactStore, source: SourceSpec, index: Manifest) -> Manifest:
    """Write ``eval/metrics.json`` (exactly METRIC_KEYS) and, when the splits flow wrote
    validation pairs, ``eval/pairs_val.json`` with recall@K on them."""
    started = time.perf_counter()
    ids, vectors = stored_vectors(store, index)
    groups = source_groups(source)
    if not groups:
        raise ValueError(
            f"{source.path}: no groups found; pass --group-column naming the known-similar groups"
        )
    metrics = leave_one_out(vectors, [groups.get(i, "") for i in ids])
    metrics = {key: metrics[key] for key in METRIC_KEYS}
    logger.info(f"evaluation in {time.perf_counter() - started:.1f}s: {metrics}")
    _pairs(store, ids, vectors)
    return store.write_json(
        METRICS_FILE,
        metrics,
        kind="metrics",
        rows=int(metrics["queries"]),
        meta={
            "index": index.sha256,
            "embeddings": index.meta.get("embeddings"),
            "pca": index.meta.get("pca"),
            "dba": index.meta.get("dba"),
        },
    )


def _pairs(store: ArtifactStore, ids: list[str], vectors: np.ndarray) -> None:
    try:
        from logosim.data.splits import load_pairs

        table = load_pairs(store, "val")
    except (FileNotFoundError, ImportError):
        return
    rows = table.to_pylist()
    positives = [(r["a"], r["b"]) for r in rows if r["label"] == 1]
    result = pair_recall(vectors, ids, positives)
    store.write_json(PAIRS_FILE, result, kind="metrics")
    logger.info(f"validation pairs: {result}")
