"""The cluster flow: build (or reuse, via the cache) the embeddings and PCA, then
kNN graph → UMAP → HDBSCAN / KMeans → near-duplicates → tables, folders, pictures, report.

Nothing is re-embedded: the build's chunks come from the cache. The clustering itself is
one cached task (same chunks, PCA, settings and groups → same result, not recomputed); the
outputs are redrawn only when the output folder does not already hold that run.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from prefect import flow
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from pydantic import BaseModel, Field

from flows._verified import run_verified
from flows.build import BuildParams, build_flow
from logosim.cluster.params import ClusterParams
from logosim.cluster.publish import quality_rows, summary_table
from logosim.core.store import ArtifactStore
from logosim.data.sources import SourceSpec
from tasks._prefect import for_store
from tasks.cluster import cluster_task, publish_task


class ClusterRunParams(BaseModel):
    """A cluster run: what to embed (the build's form), how to cluster, where to write."""

    build: BuildParams = Field(default_factory=BuildParams)
    cluster: ClusterParams = Field(default_factory=ClusterParams)
    out: str | None = Field(None, description="Output folder (default STORE/cluster/<run>/).")
    overwrite: bool = Field(
        False, description="Write into an existing --out (only this tool's files are replaced)."
    )


@flow(name="cluster", log_prints=True)
def cluster_flow(params: ClusterRunParams | None = None) -> dict[str, Any]:
    params = params or ClusterRunParams()
    built = build_flow(params.build)
    store = ArtifactStore(built.store)
    pca = built.pca if built.pca.rows else None  # rows=0: PCA off (or inside the export)
    result = run_verified(
        cluster_task,
        str(store.root),
        embeddings=built.embeddings,
        pca=pca,
        params=params.cluster,
        source=params.build.source,
    )
    out = Path(params.out) if params.out else store.path(result.path).parent
    # The default folder is this run's own, inside the store: redraw it freely (only files
    # the tool wrote are ever replaced). A folder the user named needs --overwrite.
    overwrite = params.overwrite or params.out is None
    publish = for_store(publish_task, store.root)
    summary = publish(str(store.root), result, params.build.source, str(out), overwrite)
    _publish_artifacts(summary)
    return summary


def _publish_artifacts(summary: dict[str, Any]) -> None:
    rows = [
        {k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()}
        for row in quality_rows(summary)
    ]
    create_table_artifact(rows, key="cluster-quality", description="Clusterings")
    out = summary["out"]
    create_markdown_artifact(
        "\n".join(
            [
                f"# Clusters: {summary['images']:,} logos",
                f"- report: `{out}/report.html`",
                f"- table: `{out}/clusters.csv` (and `.parquet`), folders: `{out}/clusters/`",
                f"- near-duplicates: {summary['duplicates']['groups']:,} groups "
                f"(`{out}/duplicates.csv`)",
                f"- failed to decode: {summary['failed']:,} (`{out}/failed.csv`)",
            ]
        ),
        key="cluster-summary",
        description="Cluster outputs",
    )
    print(summary_table(summary))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Run the cluster flow.")
    parser.add_argument("--source", default="demo")
    parser.add_argument("--store", default=None)
    parser.add_argument("--group-column", default=None)
    args = parser.parse_args()
    spec = SourceSpec(path=args.source, group_column=args.group_column)
    cluster_flow(ClusterRunParams(build=BuildParams(source=spec, store=args.store)))
