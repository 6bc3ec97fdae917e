"""Evaluation task: leave-one-out metrics of the indexed descriptors (cheap: always rerun)."""

from __future__ import annotations

from prefect import task

from logosim.evaluate import evaluate_build
from logosim.sources import SourceSpec
from logosim.store import ArtifactStore, Manifest
from tasks._prefect import transient_io


@task(retries=2, retry_condition_fn=transient_io)
def evaluate_task(
    store: str, source: SourceSpec, embeddings: list[Manifest], pca: Manifest | None
) -> Manifest:
    return evaluate_build(ArtifactStore(store), source, embeddings, pca)
