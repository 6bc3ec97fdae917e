"""Exact top-k by streamed blocks: the ground truth HNSW recall is measured against."""

from __future__ import annotations

from collections.abc import Iterable

import faiss
import numpy as np

from logosim.index.params import IndexParams


def exact_topk(
    queries: np.ndarray, blocks: Iterable[np.ndarray], k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k inner products against vectors streamed in blocks (bounded memory).

    Returns (scores, positions) where positions count rows across all blocks.
    """
    best_s = np.full((len(queries), 0), -np.inf, dtype=np.float32)
    best_i = np.zeros((len(queries), 0), dtype=np.int64)
    offset = 0
    for block in blocks:
        scores = queries @ block.T
        ids = np.broadcast_to(np.arange(offset, offset + len(block)), scores.shape)
        best_s = np.concatenate([best_s, scores], axis=1)
        best_i = np.concatenate([best_i, ids], axis=1)
        if best_s.shape[1] > k:
            top = np.argpartition(-best_s, k - 1, axis=1)[:, :k]
            best_s = np.take_along_axis(best_s, top, 1)
            best_i = np.take_along_axis(best_i, top, 1)
        offset += len(block)
    order = np.argsort(-best_s, axis=1, kind="stable")
    return np.take_along_axis(best_s, order, 1), np.take_along_axis(best_i, order, 1)


def recall_vs_exact(
    approx: np.ndarray, exact: np.ndarray, ks: Iterable[int] = (10, 100)
) -> dict[str, float]:
    """Share of the exact top-k found in the approximate top-k, averaged over queries."""
    out = {}
    for k in ks:
        k_eff = min(k, exact.shape[1], approx.shape[1])
        hits = [
            len(np.intersect1d(a[:k_eff], e[:k_eff])) for a, e in zip(approx, exact, strict=True)
        ]
        out[f"recall@{k}"] = float(np.mean(hits) / k_eff) if len(hits) and k_eff else 1.0
    return out


def measure_recall(
    index: faiss.Index, sample: np.ndarray, blocks: Iterable[np.ndarray], params: IndexParams
) -> dict[str, float]:
    """HNSW/IVF recall@10/@100 against exact search, on ``sample`` queries (a streamed pass),
    at the index's own search settings."""
    from logosim.index.build import index_kind
    from logosim.index.ids import search_params

    k = min(100, index.ntotal)
    _, exact = exact_topk(sample, blocks, k)
    kind = index_kind(index)
    _, approx = index.search(
        sample, k, params=search_params(kind, max(params.ef_search, k), params.nprobe)
    )
    return recall_vs_exact(approx, exact)
