"""Clustering methods: HDBSCAN (density; noise = -1, membership probabilities), KMeans (k
given or chosen by silhouette), near-duplicate groups, and each cluster's medoid."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
from loguru import logger
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from logosim.cluster.graph import KnnGraph
from logosim.cluster.params import ClusterError
from logosim.cluster.quality import silhouette

NOISE = -1


@dataclass
class Clustering:
    method: str
    labels: np.ndarray  # (n,) int64, clusters numbered 0.. by size (largest first), -1 noise
    probability: np.ndarray  # (n,) float32 membership strength in [0, 1]
    seconds: float = 0.0
    details: dict = field(default_factory=dict)

    @property
    def clusters(self) -> int:
        return int(self.labels.max() + 1) if len(self.labels) else 0


def renumber_by_size(labels: np.ndarray) -> np.ndarray:
    """Clusters numbered 0, 1, … from the largest down (ties: first seen); noise stays -1."""
    labels = np.asarray(labels, dtype=np.int64)
    kept = labels[labels >= 0]
    if not len(kept):
        return labels.copy()
    values, first, counts = np.unique(kept, return_index=True, return_counts=True)
    order = np.lexsort((first, -counts))
    mapping = np.full(values.max() + 1, NOISE, dtype=np.int64)
    mapping[values[order]] = np.arange(len(values))
    return np.where(labels >= 0, mapping[np.maximum(labels, 0)], NOISE)


def hdbscan(
    points: np.ndarray,
    min_cluster_size: int = 2,
    min_samples: int | None = 1,
    selection: str = "eom",
) -> Clustering:
    from sklearn.cluster import HDBSCAN

    started = time.perf_counter()
    n = len(points)
    model = HDBSCAN(
        min_cluster_size=min(min_cluster_size, max(n, 2)),
        min_samples=min(min_samples, n) if min_samples else None,
        cluster_selection_method=selection,
        copy=True,
    )
    model.fit(points.astype(np.float64))
    labels = renumber_by_size(model.labels_)
    return Clustering(
        "hdbscan",
        labels,
        model.probabilities_.astype(np.float32),
        time.perf_counter() - started,
        {"min_cluster_size": min_cluster_size, "min_samples": min_samples, "selection": selection},
    )


def kmeans(points: np.ndarray, k: int, seed: int = 0) -> Clustering:
    """KMeans with ``k`` clusters; probability = 1 / (1 + d_own / d_second), 0.5 on a border."""
    from sklearn.cluster import KMeans

    n = len(points)
    if k > n:
        raise ClusterError(f"KMeans asked for {k} clusters but there are only {n} images")
    started = time.perf_counter()
    model = KMeans(n_clusters=k, n_init=1, random_state=seed, max_iter=100)
    labels = model.fit_predict(points)
    dist = model.transform(points)
    own = dist[np.arange(n), labels]
    if k > 1:
        dist[np.arange(n), labels] = np.inf
        second = dist.min(axis=1)
        probability = np.where(own + second > 0, second / np.maximum(own + second, 1e-12), 1.0)
    else:
        probability = np.ones(n)
    return Clustering(
        "kmeans",
        renumber_by_size(labels),
        probability.astype(np.float32),
        time.perf_counter() - started,
        {"k": k},
    )


def k_candidates(n: int, k_min: int, k_max: int | None, steps: int) -> list[int]:
    top = min(k_max or max(k_min, n // 3), 2000, n - 1)
    if top < k_min:
        return [max(min(k_min, n - 1), 1)]
    return sorted({round(k) for k in np.geomspace(k_min, top, num=steps)})


def kmeans_auto(
    points: np.ndarray,
    k_min: int = 2,
    k_max: int | None = None,
    steps: int = 8,
    sample: int = 5000,
    seed: int = 0,
) -> Clustering:
    """KMeans with k chosen by the best silhouette over log-spaced candidates."""
    started = time.perf_counter()
    scores: dict[int, float] = {}
    best: Clustering | None = None
    for k in k_candidates(len(points), k_min, k_max, steps):
        result = kmeans(points, k, seed)
        scores[k] = silhouette(points, result.labels, sample=sample, seed=seed)
        if best is None or scores[k] > scores[best.details["k"]]:
            best = result
    assert best is not None
    logger.info(f"kmeans: silhouette by k {scores} → k={best.details['k']}")
    best.details["silhouette_by_k"] = {str(k): round(v, 4) for k, v in scores.items()}
    best.seconds = time.perf_counter() - started
    return best


def near_duplicates(graph: KnnGraph, threshold: float) -> np.ndarray:
    """Connected components of kNN pairs with cosine ≥ ``threshold``: group numbers 0.. by
    size, -1 for images with no near-duplicate. Pairs come from the kNN graph, so a group
    larger than k+1 is still found through chains."""
    n = len(graph.indices)
    rows = np.repeat(np.arange(n), graph.k)
    cols = graph.indices.ravel()
    keep = (graph.sims.ravel() >= threshold) & (rows != cols)
    if not keep.any():
        return np.full(n, NOISE, dtype=np.int64)
    adjacency = coo_matrix((np.ones(int(keep.sum())), (rows[keep], cols[keep])), shape=(n, n))
    _, component = connected_components(adjacency, directed=False)
    sizes = np.bincount(component)
    labels = np.where(sizes[component] > 1, component, NOISE)
    return renumber_by_size(labels)


def medoids(x: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per cluster, the member closest to the (normalised) mean descriptor; and each image's
    cosine similarity to its cluster's mean (1 for noise). O(n): no pairwise matrix."""
    n_clusters = int(labels.max() + 1) if len(labels) and labels.max() >= 0 else 0
    member = labels >= 0
    centroids = np.zeros((n_clusters, x.shape[1]), dtype=np.float64)
    np.add.at(centroids, labels[member], x[member])
    centroids /= np.maximum(np.linalg.norm(centroids, axis=1, keepdims=True), 1e-12)
    closeness = np.ones(len(x), dtype=np.float32)
    closeness[member] = np.einsum("ij,ij->i", x[member], centroids[labels[member]])
    medoid = np.zeros(n_clusters, dtype=np.int64)
    if n_clusters:
        idx = np.flatnonzero(member)
        order = np.lexsort((-closeness[idx], labels[idx]))
        ordered = idx[order]
        first = np.searchsorted(labels[ordered], np.arange(n_clusters))
        medoid = ordered[first]
    return medoid, closeness
