"""Clustering settings (a form in the Prefect UI) and the error raised on unusable input."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

Method = Literal["hdbscan", "kmeans", "both"]
Space = Literal["umap", "descriptors"]

CLUSTER_VERSION = "1"
PCA_INIT_FROM = 50_000  # auto UMAP start: spectral below, pca from here  # bump when a code change alters the clusters (invalidates caches)


class ClusterError(ValueError):
    """The input cannot be clustered as asked (too few images, identical vectors, …)."""


class ClusterParams(BaseModel):
    """How the embedded logos are grouped."""

    method: Method = Field("hdbscan", description="hdbscan, kmeans, or both (hdbscan first).")
    k: int | None = Field(
        None, ge=2, description="KMeans: number of clusters; None = chosen by silhouette."
    )
    k_min: int = Field(2, ge=2, description="KMeans: smallest k tried when k is None.")
    k_max: int | None = Field(
        None, ge=2, description="KMeans: largest k tried (default: images / 3, at most 2,000)."
    )
    k_steps: int = Field(8, ge=1, description="KMeans: how many k are tried (log-spaced).")
    min_cluster_size: int = Field(2, ge=2, description="HDBSCAN: smallest cluster.")
    min_samples: int | None = Field(
        1, ge=1, description="HDBSCAN: density smoothing (None = min_cluster_size)."
    )
    selection: Literal["eom", "leaf"] = Field("eom", description="HDBSCAN: cluster selection.")
    space: Space = Field(
        "umap", description="Cluster on the UMAP layout ('umap') or on the descriptors."
    )
    neighbours: int = Field(
        5, ge=2, description="UMAP neighbours of the clustering layout (dev bench: 5 best)."
    )
    map_neighbours: int = Field(15, ge=2, description="UMAP neighbours of the 2-D map.")
    umap_dims: int = Field(10, ge=2, description="Dimensions of the layout clustered on.")
    umap_init: Literal["auto", "spectral", "pca"] = Field(
        "auto",
        description="UMAP start: spectral (UMAP's default), pca, or auto = spectral below "
        "50,000 logos, pca from there (spectral's cost and memory grow fast with size).",
    )
    min_dist: float = Field(0.0, ge=0.0, description="UMAP min_dist of the clustering layout.")
    dedup_threshold: float = Field(
        0.95, gt=-1.0, le=1.0, description="Near-duplicates: cosine similarity at least this."
    )
    silhouette_sample: int = Field(5000, ge=100, description="Rows sampled for silhouettes.")
    seed: int = Field(0, description="Random seed (UMAP, KMeans, samples).")

    def init_for(self, n: int) -> str:
        if self.umap_init != "auto":
            return self.umap_init
        return "spectral" if n < PCA_INIT_FROM else "pca"

    def methods(self) -> list[str]:
        return ["hdbscan", "kmeans"] if self.method == "both" else [self.method]
