"""How good a clustering is: against known groups (ARI, NMI, purity) and on its own
(silhouette). Against groups, only images whose group is not empty count, and HDBSCAN's
noise points are singletons (each its own cluster), not one big cluster."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def noise_as_singletons(labels: np.ndarray) -> np.ndarray:
    labels = np.asarray(labels, dtype=np.int64).copy()
    noise = labels < 0
    start = labels.max() + 1 if len(labels) else 0
    labels[noise] = start + np.arange(int(noise.sum()))
    return labels


def purity(truth: np.ndarray, predicted: np.ndarray) -> float:
    """Share of images in their cluster's most common group."""
    if not len(truth):
        return 0.0
    _, t = np.unique(truth, return_inverse=True)
    _, p = np.unique(predicted, return_inverse=True)
    table = np.zeros((p.max() + 1, t.max() + 1), dtype=np.int64)
    np.add.at(table, (p, t), 1)
    return float(table.max(axis=1).sum() / len(truth))


def group_scores(labels: np.ndarray, groups: Sequence[str | None]) -> dict[str, float | int]:
    """``ari``, ``nmi``, ``purity`` over the images with a non-empty group."""
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    grouped = np.array([bool(g) for g in groups], dtype=bool)
    predicted = noise_as_singletons(labels)[grouped]
    truth = np.array([g for g in groups if g])
    if len(truth) < 2:
        return {"ari": 0.0, "nmi": 0.0, "purity": 0.0, "grouped_images": len(truth)}
    return {
        "ari": float(adjusted_rand_score(truth, predicted)),
        "nmi": float(normalized_mutual_info_score(truth, predicted)),
        "purity": purity(truth, predicted),
        "grouped_images": len(truth),
        "groups": len(set(truth.tolist())),
    }


def silhouette(points: np.ndarray, labels: np.ndarray, sample: int = 5000, seed: int = 0) -> float:
    """Mean silhouette of the clustered (non-noise) points, on a sample; NaN when undefined
    (fewer than 2 clusters, or every cluster a singleton)."""
    from sklearn.metrics import silhouette_score

    keep = np.flatnonzero(labels >= 0)
    if len(keep) > sample:
        keep = np.sort(np.random.default_rng(seed).choice(keep, sample, replace=False))
    chosen = labels[keep]
    n_labels = len(np.unique(chosen))
    if n_labels < 2 or n_labels >= len(keep):
        return float("nan")
    return float(silhouette_score(points[keep], chosen))


def size_summary(labels: np.ndarray) -> dict[str, float | int]:
    """Clusters, sizes and noise share of one clustering."""
    n = len(labels)
    noise = int((labels < 0).sum())
    sizes = np.bincount(labels[labels >= 0]) if n - noise else np.zeros(0, dtype=np.int64)
    return {
        "clusters": len(sizes),
        "largest": int(sizes.max()) if len(sizes) else 0,
        "median_size": float(np.median(sizes)) if len(sizes) else 0.0,
        "singletons": int((sizes == 1).sum()),
        "noise": noise,
        "noise_share": noise / n if n else 0.0,
    }
