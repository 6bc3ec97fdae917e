"""Evaluation of an index build: leave-one-out metrics over a source with known groups.

The vectors evaluated are read back from the index (after PCA and α-DBA, exactly as
stored) and searched exactly, so the figures measure the descriptor, not the ANN
approximation (whose recall is reported at build time). Queries are the indexed images
themselves, so no α-query expansion applies.

Two protocols: every grouped image as a query (``eval/metrics.json``), and, where the
splits stage ran, only the test split's images (``eval/metrics_test.json``): images the PCA
never saw, like every real query and every mark a reindex adds. A transform that fails
outside its fit (issue 19) shows in the second while the first, mostly fitted images,
hides it.
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
TEST_METRICS_FILE = "eval/metrics_test.json"
EVAL_VERSION = "3"  # 3: + test-split (out-of-sample) queries; 2: the index's stored vectors
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


def evaluate_build(
    store: ArtifactStore, source: SourceSpec, index: Manifest, rerank: dict | None = None
) -> Manifest:
    """Write ``eval/metrics.json`` (exactly METRIC_KEYS) and, when the splits flow wrote
    validation pairs, ``eval/pairs_val.json`` with recall@K on them. ``rerank`` (enabled
    CompositeParams): the same metrics with stage-2 re-ranking (issue 12)."""
    started = time.perf_counter()
    ids, vectors = stored_vectors(store, index)
    groups = source_groups(source)
    if not groups:
        raise ValueError(
            f"{source.path}: no groups found; pass --group-column naming the known-similar groups"
        )
    labels = [groups.get(i, "") for i in ids]
    measure = _measure(store, ids, rerank)
    metrics = _keyed(measure(vectors, labels))
    logger.info(f"evaluation in {time.perf_counter() - started:.1f}s: {metrics}")
    _pairs(store, ids, vectors)
    meta = {
        "index": index.sha256,
        "embeddings": index.meta.get("embeddings"),
        "pca": index.meta.get("pca"),
        "dba": index.meta.get("dba"),
        "rerank": rerank if rerank and rerank.get("enabled") else None,
    }
    _test_split(store, ids, vectors, labels, meta, measure)
    return store.write_json(
        METRICS_FILE, metrics, kind="metrics", rows=int(metrics["queries"]), meta=meta
    )


def _measure(store: ArtifactStore, ids: list[str], rerank: dict | None):
    """leave_one_out, or its stage-2 re-ranked twin when ``rerank`` is enabled."""
    if not rerank or not rerank.get("enabled"):
        return leave_one_out
    from functools import partial

    from logosim.search.composite import CompositeParams
    from logosim.search.evaluate_rerank import reranked_leave_one_out
    from logosim.search.local import LocalTable

    params = CompositeParams.model_validate(rerank)
    return partial(reranked_leave_one_out, ids=ids, local=LocalTable(store), params=params)


def _keyed(metrics: dict) -> dict:
    return {key: metrics[key] for key in METRIC_KEYS}


def _test_split(
    store: ArtifactStore,
    ids: list[str],
    vectors: np.ndarray,
    labels: list[str],
    meta: dict,
    measure=leave_one_out,
) -> None:
    """The out-of-sample protocol: test-split queries against everything else."""
    try:
        from logosim.data.splits import load_split_ids

        test = load_split_ids(store, "test")
    except FileNotFoundError:
        return
    mask = np.fromiter((i in test for i in ids), dtype=bool, count=len(ids))
    metrics = _keyed(measure(vectors, labels, query_mask=mask))
    logger.info(f"test-split (out-of-sample) queries: {metrics}")
    store.write_json(
        TEST_METRICS_FILE, metrics, kind="metrics", rows=int(metrics["queries"]), meta=meta
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
