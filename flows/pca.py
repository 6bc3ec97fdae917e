"""The pca flow: fit PCA (+ whitening) on the train split's embeddings, once per content."""

from __future__ import annotations

from prefect import flow

from flows._verified import run_verified
from logosim.core.store import ArtifactStore, Manifest
from logosim.data.splits import SPLITS_FILE
from logosim.embed.pca import PCAParams
from tasks.pca import fit_pca_task


@flow(name="pca", log_prints=True)
def pca_flow(
    store: str,
    embeddings: list[Manifest],
    params: PCAParams | None = None,
    shipped: str | None = None,
) -> Manifest:
    """Fit on the train split when the splits flow has run (else on every embedding); with
    ``shipped`` (the embedding weights' projection file) publish that instead."""
    splits = ArtifactStore(store).load_verified(SPLITS_FILE)
    if splits is None:
        print("pca: no splits/splits.parquet in the store; fitting on all embeddings")
    return run_verified(
        fit_pca_task,
        store,
        embeddings=embeddings,
        params=params or PCAParams(),
        splits_sha=splits.sha256 if splits else None,
        shipped=shipped,
    )
