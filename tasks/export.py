"""Export task: build, validate and publish the ONNX embedding model."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from logosim.core.store import ArtifactStore, Manifest
from logosim.embed.export_params import ExportParams
from logosim.embed.graph_export import export_model


# Not cached: it reads whatever weights and PCA are in the store now, and takes a minute.
@task(cache_policy=NO_CACHE)
def export_embedding_model(store: str, params: ExportParams) -> Manifest:
    return export_model(ArtifactStore(store), params)
