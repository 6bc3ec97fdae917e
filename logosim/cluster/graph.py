"""The k-nearest-neighbour graph of the descriptors, from FAISS (inner product = cosine).

Exact (``IndexFlatIP``) below ``exact_below`` vectors, HNSW above. Row i starts with i itself
(similarity 1), the convention UMAP's ``precomputed_knn`` expects.
"""

from __future__ import annotations

from dataclasses import dataclass

import faiss
import numpy as np


@dataclass
class KnnGraph:
    indices: np.ndarray  # (n, k) int64, column 0 = the row itself
    sims: np.ndarray  # (n, k) float32 cosine similarities, descending

    @property
    def k(self) -> int:
        return int(self.indices.shape[1])

    def distances(self) -> np.ndarray:
        """Cosine distances (1 - similarity), clipped at 0."""
        return np.maximum(1.0 - self.sims, 0.0).astype(np.float32)


def knn_graph(x: np.ndarray, k: int, exact_below: int = 200_000, seed: int = 0) -> KnnGraph:
    """Each row's ``k`` nearest rows (itself first); ``k`` is capped at the number of rows."""
    n, dim = x.shape
    k = min(k, n)
    x = np.ascontiguousarray(x, dtype=np.float32)
    if n < exact_below:
        index = faiss.IndexFlatIP(dim)
    else:
        index = faiss.IndexHNSWFlat(dim, 32, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = 100
        index.hnsw.efSearch = max(128, 2 * k)
    index.add(x)
    sims, indices = index.search(x, k)
    return KnnGraph(*_self_first(indices, sims))


def _self_first(indices: np.ndarray, sims: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Put each row itself in column 0 (ties between duplicates may place it later, and an
    approximate search may miss it); missing neighbours (-1) repeat the row itself."""
    n, k = indices.shape
    rows = np.arange(n)
    indices = np.where(indices < 0, rows[:, None], indices).astype(np.int64)
    sims = np.where(np.isfinite(sims), sims, -1.0).astype(np.float32)
    bad = np.flatnonzero(indices[:, 0] != rows)
    for i in bad:
        others = [(j, s) for j, s in zip(indices[i], sims[i], strict=True) if j != i][: k - 1]
        indices[i] = [i] + [j for j, _ in others] + [i] * (k - 1 - len(others))
        sims[i] = [1.0] + [s for _, s in others] + [-1.0] * (k - 1 - len(others))
    sims[:, 0] = 1.0
    return indices, np.minimum(sims, 1.0)
