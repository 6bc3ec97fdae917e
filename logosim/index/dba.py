"""α-DBA (database-side augmentation) and α-QE (query expansion) over a FAISS index.

Each indexed vector is replaced by ``L2(v + Σ_j max(s_j, 0)^α · v_j)`` over its nearest other
vectors; a query from outside the index gets the same weighting against the stored vectors.
"""

from __future__ import annotations

import faiss
import numpy as np

from logosim.embed.pca import l2_normalize


def neighbour_augment(
    vectors: np.ndarray, scores: np.ndarray, neighbours: np.ndarray, alpha: float
) -> np.ndarray:
    """The α-weighted neighbour average ``L2(v + Σ_j max(s_j, 0)^α · v_j)``.

    ``scores`` (Q, n) and ``neighbours`` (Q, n, D): a missing neighbour is a zero vector.
    """
    weights = np.maximum(scores, 0.0) ** alpha
    return l2_normalize(vectors + np.einsum("qn,qnd->qd", weights, neighbours))


def nearest_others(
    index: faiss.Index,
    vectors: np.ndarray,
    n: int,
    own: np.ndarray | None = None,
    params: faiss.SearchParameters | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Top-n (scores, labels) in ``index``, leaving out each row's own label ``own``.

    The own hit is dropped by label, not by rank: an exact duplicate may outrank it. Labels
    are -1 (score 0) where fewer than n were found.
    """
    k = n + (own is not None)
    scores, labels = index.search(vectors, k, params=params)
    keep = labels >= 0
    if own is not None:
        keep &= labels != own[:, None]
    order = np.argsort(~keep, axis=1, kind="stable")[:, :n]  # kept hits first, in rank order
    kept = np.take_along_axis(keep, order, 1)
    labels = np.where(kept, np.take_along_axis(labels, order, 1), -1)
    return np.where(kept, np.take_along_axis(scores, order, 1), 0.0), labels


def augment(
    index: faiss.Index,
    vectors: np.ndarray,
    n: int,
    alpha: float,
    own: np.ndarray | None = None,
    params: faiss.SearchParameters | None = None,
) -> np.ndarray:
    """α-DBA (``own``: the rows' labels in ``index``) or α-QE (queries from outside) of
    ``vectors`` with their n nearest vectors stored in ``index``, searched as it searches."""
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    if n == 0 or index.ntotal == 0:
        return vectors
    scores, labels = nearest_others(index, vectors, n, own, params)
    found = labels >= 0
    if not found.any():
        return vectors
    fill = np.where(found, labels, labels[found][0])  # any stored label; zeroed below
    neighbours = index.reconstruct_batch(fill.ravel()).reshape(*labels.shape, -1)
    neighbours[~found] = 0.0
    return neighbour_augment(vectors, scores, neighbours, alpha)


def augment_collection(vectors: np.ndarray, n: int, alpha: float) -> np.ndarray:
    """α-DBA of a whole in-memory collection with exact neighbours (benchmarks, tests): the
    code path of an exact index build."""
    index = faiss.IndexIDMap2(faiss.IndexFlatIP(vectors.shape[1]))
    labels = np.arange(len(vectors), dtype=np.int64)
    index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), labels)
    return augment(index, vectors, n, alpha, own=labels)
