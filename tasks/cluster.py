"""Cluster tasks: the computation (cached on what the clusters depend on) and the outputs
(not cached by Prefect: the output folder's own marker says whether it is up to date)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import task
from prefect.context import TaskRunContext

from logosim.cluster.params import ClusterParams
from logosim.cluster.publish import publish_run
from logosim.cluster.run import run_clustering, run_key
from logosim.core.store import ArtifactStore, Manifest
from logosim.data.sources import SourceSpec
from logosim.search.evaluate import source_groups
from tasks._prefect import transient_io


def cluster_cache_key(context: TaskRunContext, parameters: dict[str, Any]) -> str:
    """Embedding chunks + PCA model + settings + the source's groups (a metadata pass)."""
    groups = source_groups(parameters["source"])
    key = run_key(parameters["embeddings"], parameters["pca"], parameters["params"], groups)
    return "cluster-" + key[:32]


@task(
    cache_key_fn=cluster_cache_key, persist_result=True, retries=2, retry_condition_fn=transient_io
)
def cluster_task(
    store: str,
    embeddings: list[Manifest],
    pca: Manifest | None,
    params: ClusterParams,
    source: SourceSpec,
) -> Manifest:
    groups = source_groups(source)
    return run_clustering(ArtifactStore(store), embeddings, pca, params, groups)


@task(retries=2, retry_condition_fn=transient_io)
def publish_task(
    store: str, result: Manifest, source: SourceSpec, out: str, overwrite: bool
) -> dict[str, Any]:
    return publish_run(ArtifactStore(store), result, source, Path(out), overwrite)
