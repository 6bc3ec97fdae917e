"""UMAP layouts from the precomputed kNN graph (UMAP does not search neighbours again).

A 2-D layout is drawn (``umap.png``, the CSV's x/y); a higher-dimensional one (``umap_dims``,
min_dist 0) is what HDBSCAN and KMeans cluster on. Tiny inputs (fewer than 8 images) get a
PCA projection instead: UMAP's spectral initialisation needs a few points.
"""

from __future__ import annotations

import os
import warnings

import numpy as np

from logosim.cluster.graph import KnnGraph

MIN_UMAP_ROWS = 8


def pca_layout(x: np.ndarray, dims: int) -> np.ndarray:
    """The first ``dims`` principal coordinates (zero-padded when the data has fewer)."""
    centred = x - x.mean(axis=0, keepdims=True)
    u, s, _ = np.linalg.svd(centred, full_matrices=False)
    coords = (u * s)[:, :dims]
    if coords.shape[1] < dims:
        coords = np.pad(coords, ((0, 0), (0, dims - coords.shape[1])))
    return coords.astype(np.float32)


def umap_layout(
    x: np.ndarray,
    graph: KnnGraph,
    dims: int,
    *,
    neighbours: int,
    min_dist: float = 0.1,
    seed: int = 0,
    init: str = "spectral",
) -> np.ndarray:
    """UMAP of ``x`` (cosine) into ``dims`` dimensions, reusing ``graph``'s neighbours."""
    n = len(x)
    if n < MIN_UMAP_ROWS:
        return pca_layout(x, dims)
    os.environ.setdefault("NUMBA_CACHE_DIR", os.path.expanduser("~/.cache/logosim-numba"))
    import umap  # heavy import (numba): only when a layout is computed

    k = min(neighbours, graph.k, n - 1)
    knn = (
        np.ascontiguousarray(graph.indices[:, :k]),
        np.ascontiguousarray(graph.distances()[:, :k]),
    )
    reducer = umap.UMAP(
        n_neighbors=k,
        n_components=dims,
        metric="cosine",
        min_dist=min_dist,
        precomputed_knn=(*knn, None),
        random_state=seed,
        init=init if n > dims + 1 else "random",
        n_jobs=1,
        low_memory=True,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "no search index", "n_jobs overridden by seed"
        coords = reducer.fit_transform(x)
    return np.nan_to_num(np.asarray(coords, dtype=np.float32))
