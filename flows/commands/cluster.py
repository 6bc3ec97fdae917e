"""``logosim cluster``: group the embedded logos (UMAP + HDBSCAN / KMeans), find
near-duplicates, and write tables, one folder per cluster, pictures and an HTML report."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer

from flows.commands._options import (
    DEFAULT_WEIGHTS,
    BuildOptions,
    ChunkOpt,
    DimsOpt,
    Exit,
    FormatOpt,
    GroupOpt,
    SourceOpt,
    StoreOpt,
    WeightsOpt,
    checked_spec,
    fail,
    store_path,
)
from flows.commands.build import run_with_progress

MethodOpt = Annotated[
    Literal["hdbscan", "kmeans", "both"],
    typer.Option("--method", help="hdbscan (finds the number of clusters), kmeans, or both."),
]
KOpt = Annotated[
    int | None, typer.Option("--k", min=2, help="KMeans clusters (default: chosen by silhouette).")
]
MinSizeOpt = Annotated[
    int, typer.Option("--min-cluster-size", min=2, help="HDBSCAN: smallest cluster.")
]
NeighboursOpt = Annotated[
    int, typer.Option("--neighbours", min=2, help="UMAP neighbours of the clustering layout.")
]
UmapDimsOpt = Annotated[int, typer.Option("--umap-dims", min=2, help="Dims clustered on.")]
SpaceOpt = Annotated[
    Literal["umap", "descriptors"],
    typer.Option("--space", help="Cluster the UMAP layout, or the descriptors (slow, O(n²))."),
]
DedupOpt = Annotated[
    float,
    typer.Option("--dedup-threshold", min=-1.0, max=1.0, help="Near-duplicates: cosine ≥ this."),
]
OutOpt = Annotated[
    Path | None,
    typer.Option("--out", help="Output folder (default STORE/cluster/<run>/).", resolve_path=True),
]
OverwriteOpt = Annotated[
    bool,
    typer.Option(
        "--overwrite", help="Write into an existing --out; only this tool's files are replaced."
    ),
]
ModelOpt = Annotated[
    str,
    typer.Option(
        "--model",
        help="Backbone: a timm name, or open_clip:<arch> (e.g. open_clip:ViT-B-32) with "
        "--weights FILE.",
    ),
]
InitOpt = Annotated[
    Literal["auto", "spectral", "pca"],
    typer.Option("--umap-init", help="UMAP start; auto = spectral below 50,000 logos, else pca."),
]
SeedOpt = Annotated[int, typer.Option("--seed", help="Random seed (UMAP, KMeans).")]


def register(app: typer.Typer) -> None:
    @app.command("cluster")
    def cluster(
        source: SourceOpt = "demo",
        store: StoreOpt = None,
        fmt: FormatOpt = "auto",
        group_column: GroupOpt = None,
        method: MethodOpt = "hdbscan",
        k: KOpt = None,
        min_cluster_size: MinSizeOpt = 2,
        neighbours: NeighboursOpt = 5,
        umap_dims: UmapDimsOpt = 10,
        space: SpaceOpt = "umap",
        umap_init: InitOpt = "auto",
        dedup_threshold: DedupOpt = 0.95,
        out: OutOpt = None,
        overwrite: OverwriteOpt = False,
        seed: SeedOpt = 0,
        chunk_size: ChunkOpt = None,
        pca_dims: DimsOpt = 512,
        model: ModelOpt = "tf_efficientnet_lite0",
        weights: WeightsOpt = DEFAULT_WEIGHTS,
    ) -> None:
        """Cluster the logos of a source (embeddings come from the build's cache)."""
        from flows.cluster import ClusterRunParams, cluster_flow
        from logosim.cluster.params import ClusterError, ClusterParams
        from logosim.embed.weight_files import ModelError, weights_digest

        spec, total = checked_spec(source, fmt, group_column)
        try:
            weights_digest(model, weights)  # a CLIP model without a weights file fails here
        except ModelError as exc:
            fail(str(exc), Exit.BAD_INPUT, exc)
        options = BuildOptions(chunk_size=chunk_size, pca_dims=pca_dims, weights=weights)
        build = options.params(spec, store_path(store))
        embed = {"model": model, "weights": weights}
        if model.startswith("open_clip:"):
            embed["runtime"] = "eager"  # CLIP towers run in PyTorch (no ONNX export checked)
        build.embed = build.embed.model_copy(update=embed)
        try:
            settings = ClusterParams(
                method=method,
                k=k,
                min_cluster_size=min_cluster_size,
                neighbours=neighbours,
                umap_dims=umap_dims,
                space=space,
                umap_init=umap_init,
                dedup_threshold=dedup_threshold,
                seed=seed,
            )
            params = ClusterRunParams(
                build=build,
                cluster=settings,
                out=str(out) if out else None,
                overwrite=overwrite,
            )
            run_with_progress(total, lambda: cluster_flow(params))
        except ClusterError as exc:
            fail(str(exc), Exit.BAD_INPUT, exc)
