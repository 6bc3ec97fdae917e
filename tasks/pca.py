"""PCA task: fit on the train split's embeddings (or publish the weights' shipped projection);
cached on their content, the settings and the shipped file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import task
from prefect.context import TaskRunContext

from logosim.core.digest import stable_digest
from logosim.core.store import ArtifactStore, Manifest
from logosim.data.splits import load_split_ids
from logosim.embed.pca import PCA_VERSION, PCAParams, fit_and_save_pca
from logosim.embed.weight_files import file_digest
from tasks._prefect import transient_io


def pca_inputs(parameters: dict[str, Any]) -> str:
    """Embedding chunks (named by their content cache key) + which rows are train + settings.

    Chunk names, not file sha256s: a chunk recomputed after its file was lost has the same
    content but new bytes (.npz entries carry a timestamp), and must not force a refit.
    """
    chunks = [(m.path, m.rows) for m in parameters["embeddings"]]
    shipped = parameters.get("shipped")
    projection = file_digest(Path(shipped)) if shipped else None
    return stable_digest(
        PCA_VERSION, chunks, parameters["splits_sha"], parameters["params"], projection
    )


def pca_cache_key(context: TaskRunContext, parameters: dict[str, Any]) -> str:
    return "pca-" + pca_inputs(parameters)[:32]


@task(cache_key_fn=pca_cache_key, persist_result=True, retries=2, retry_condition_fn=transient_io)
def fit_pca_task(
    store: str,
    embeddings: list[Manifest],
    params: PCAParams,
    splits_sha: str | None,
    shipped: str | None = None,
) -> Manifest:
    artifacts = ArtifactStore(store)
    train = load_split_ids(artifacts, "train") if splits_sha else None  # no splits: all rows
    inputs = pca_inputs(
        {"embeddings": embeddings, "params": params, "splits_sha": splits_sha, "shipped": shipped}
    )
    projection = Path(shipped) if shipped else None
    return fit_and_save_pca(artifacts, embeddings, params, train, inputs=inputs, shipped=projection)
