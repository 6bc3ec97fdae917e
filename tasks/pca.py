"""PCA task: fit on the train split's embeddings; cached on their content and the settings."""

from __future__ import annotations

from typing import Any

from prefect import task
from prefect.context import TaskRunContext

from logosim.chunks import stable_digest
from logosim.pca import PCA_VERSION, PCAParams, fit_and_save_pca
from logosim.splits import load_split_ids
from logosim.store import ArtifactStore, Manifest
from tasks._prefect import transient_io


def pca_cache_key(context: TaskRunContext, parameters: dict[str, Any]) -> str:
    """Embedding chunk digests + which rows are train (splits digest) + PCA settings."""
    shas = [m.sha256 for m in parameters["embeddings"]]
    return (
        "pca-"
        + stable_digest(PCA_VERSION, shas, parameters["splits_sha"], parameters["params"])[:32]
    )


@task(cache_key_fn=pca_cache_key, persist_result=True, retries=2, retry_condition_fn=transient_io)
def fit_pca_task(
    store: str, embeddings: list[Manifest], params: PCAParams, splits_sha: str | None
) -> Manifest:
    artifacts = ArtifactStore(store)
    train = load_split_ids(artifacts, "train") if splits_sha else None  # no splits: all rows
    return fit_and_save_pca(artifacts, embeddings, params, train)
