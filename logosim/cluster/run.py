"""The clustering computation: descriptors → kNN graph → UMAP layouts → clusters, duplicate
groups and quality figures, saved as one arrays artifact in the store (``cluster/<run>/``).

Everything people look at (tables, folders, pictures, the report) is drawn from that
artifact by ``outputs``, so re-drawing never recomputes the clusters.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from loguru import logger

from logosim.cluster.graph import knn_graph
from logosim.cluster.layout import umap_layout
from logosim.cluster.methods import (
    Clustering,
    hdbscan,
    kmeans,
    kmeans_auto,
    medoids,
    near_duplicates,
)
from logosim.cluster.params import CLUSTER_VERSION, ClusterError, ClusterParams
from logosim.cluster.pictures import heatmap_sample
from logosim.cluster.quality import group_scores, silhouette, size_summary
from logosim.cluster.vectors import Vectors, load_vectors
from logosim.core.store import ArtifactStore, Manifest
from logosim.data.chunks import stable_digest

NEIGHBOURS_SHOWN = 5  # nearest neighbours listed per logo in clusters.csv
RESULT_FILE = "result.npz"


def run_key(
    embeddings: list[Manifest], pca: Manifest | None, params: ClusterParams, groups: dict
) -> str:
    """What the clusters depend on: the embedding chunks, the PCA model, the settings and
    the known groups (for the quality figures)."""
    return stable_digest(
        CLUSTER_VERSION,
        [m.sha256 for m in embeddings],
        pca.sha256 if pca else None,
        params.model_dump(mode="json"),
        sorted(groups.items()),
    )


def run_name(params: ClusterParams, key: str) -> str:
    return f"{params.method}-{key[:10]}"


def check_input(vectors: Vectors, params: ClusterParams) -> None:
    n = len(vectors.ids)
    if n == 0:
        raise ClusterError("nothing to cluster: no image was embedded (see errors.jsonl)")
    if n == 1:
        raise ClusterError(f"nothing to cluster: only one image ({vectors.ids[0]!r}) was embedded")
    if params.k is not None and params.k > n and "kmeans" in params.methods():
        raise ClusterError(f"--k {params.k} asks for more clusters than the {n} images")
    if params.min_cluster_size > n and "hdbscan" in params.methods():
        raise ClusterError(
            f"--min-cluster-size {params.min_cluster_size} is larger than the {n} images"
        )
    spread = float(np.max(1.0 - vectors.x @ vectors.x[0]))
    if spread < 1e-6:
        raise ClusterError(
            f"all {n} embeddings are identical (the images look the same to the model): "
            "there is no structure to cluster; they form one near-duplicate group"
        )


def _cluster(points: np.ndarray, method: str, params: ClusterParams) -> Clustering:
    if method == "hdbscan":
        return hdbscan(points, params.min_cluster_size, params.min_samples, params.selection)
    if params.k is not None:
        return kmeans(points, params.k, params.seed)
    return kmeans_auto(
        points, params.k_min, params.k_max, params.k_steps, params.silhouette_sample, params.seed
    )


def cluster_vectors(
    vectors: Vectors, params: ClusterParams, groups: dict[str, str] | None = None
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """(arrays, summary) of one clustering run over ``vectors``."""
    check_input(vectors, params)
    x, n = vectors.x, len(vectors.ids)
    timings: dict[str, float] = {}
    started = time.perf_counter()
    k = max(params.neighbours, params.map_neighbours, NEIGHBOURS_SHOWN + 1)
    graph = knn_graph(x, k, seed=params.seed)
    timings["knn"] = time.perf_counter() - started
    tick = time.perf_counter()
    init = params.init_for(n)
    xy = umap_layout(
        x, graph, 2, neighbours=params.map_neighbours, min_dist=0.1, seed=params.seed, init=init
    )
    timings["umap_2d"] = time.perf_counter() - tick
    if params.space == "umap":
        tick = time.perf_counter()
        points = umap_layout(
            x,
            graph,
            params.umap_dims,
            neighbours=params.neighbours,
            min_dist=params.min_dist,
            seed=params.seed,
            init=init,
        )
        timings[f"umap_{params.umap_dims}d"] = time.perf_counter() - tick
    else:
        points = x
    group_list = [(groups or {}).get(i, "") for i in vectors.ids]
    arrays: dict[str, np.ndarray] = {
        "ids": np.asarray(vectors.ids, dtype=np.str_),
        "xy": xy,
        "nn_index": graph.indices[:, 1 : NEIGHBOURS_SHOWN + 1],
        "nn_sim": graph.sims[:, 1 : NEIGHBOURS_SHOWN + 1],
    }
    methods: dict[str, dict[str, Any]] = {}
    for method in params.methods():
        result = _cluster(points, method, params)
        timings[method] = result.seconds
        medoid, closeness = medoids(x, result.labels)
        arrays |= {
            f"{method}_labels": result.labels,
            f"{method}_probability": result.probability,
            f"{method}_closeness": closeness,
            f"{method}_medoids": medoid,
        }
        figures: dict[str, Any] = size_summary(result.labels)
        tick = time.perf_counter()
        figures["silhouette"] = silhouette(
            points, result.labels, params.silhouette_sample, params.seed
        )
        timings[f"{method}_silhouette"] = time.perf_counter() - tick
        if any(group_list):
            figures |= group_scores(result.labels, group_list)
        figures["settings"] = result.details
        methods[method] = figures
        logger.info(f"cluster {method}: {_describe(figures)}")
    primary = params.methods()[0]
    heat_rows = heatmap_sample(arrays[f"{primary}_labels"], arrays[f"{primary}_closeness"])
    arrays["heatmap_rows"] = heat_rows
    arrays["heatmap_vectors"] = x[heat_rows]
    tick = time.perf_counter()
    duplicates = near_duplicates(graph, params.dedup_threshold)
    timings["duplicates"] = time.perf_counter() - tick
    arrays["duplicate_group"] = duplicates
    summary = {
        "images": n,
        "dims": int(x.shape[1]),
        "methods": methods,
        "primary": params.methods()[0],
        "duplicates": {
            "threshold": params.dedup_threshold,
            "groups": int(duplicates.max() + 1) if (duplicates >= 0).any() else 0,
            "images": int((duplicates >= 0).sum()),
        },
        "seconds": {k: round(v, 3) for k, v in timings.items()}
        | {"total": round(time.perf_counter() - started, 3)},
        "params": params.model_dump(mode="json"),
    }
    return arrays, summary


def _describe(figures: dict[str, Any]) -> str:
    keys = ("clusters", "largest", "noise_share", "silhouette", "ari", "nmi", "purity")
    return ", ".join(
        f"{k} {figures[k]:.3f}" if isinstance(figures[k], float) else f"{k} {figures[k]}"
        for k in keys
        if k in figures
    )


def run_clustering(
    store: ArtifactStore,
    embeddings: list[Manifest],
    pca: Manifest | None,
    params: ClusterParams,
    groups: dict[str, str],
) -> Manifest:
    """Cluster the cached embeddings and publish ``cluster/<run>/result.npz``."""
    key = run_key(embeddings, pca, params, groups)
    vectors = load_vectors(store, embeddings, pca)
    arrays, summary = cluster_vectors(vectors, params, groups)
    run = run_name(params, key)
    return store.write_arrays(
        f"cluster/{run}/{RESULT_FILE}",
        arrays,
        kind="clusters",
        rows=len(vectors.ids),
        versions={"cluster": CLUSTER_VERSION},
        meta={"run": run, "key": key, "summary": summary},
    )
