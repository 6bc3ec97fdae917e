"""Index task: build the FAISS index from the embedding chunks; cached on their content."""

from __future__ import annotations

from typing import Any

from prefect import task
from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.context import TaskRunContext

from logosim.core.digest import stable_digest
from logosim.core.store import ArtifactStore, Manifest
from logosim.embed.params import RUN_SETTINGS
from logosim.index.build import build_index, progress_hook, progress_total
from logosim.index.params import INDEX_VERSION, IndexParams
from tasks._prefect import transient_io


def _vector_provenance(meta: dict) -> dict:
    """The part of the index's ``meta`` that names what the vectors are: not how fast they
    were embedded (batch size, device, runtime) nor the source's group or text columns, so
    an ``evaluate`` after a ``build``, or a rerun with another batch size, reuses the index."""
    embed = {k: v for k, v in (meta.get("embed") or {}).items() if k not in RUN_SETTINGS}
    source = {
        k: v
        for k, v in (meta.get("source") or {}).items()
        if k not in ("group_column", "text_column")
    }
    return {**meta, "embed": embed, "source": source}


def index_cache_key(context: TaskRunContext, parameters: dict[str, Any]) -> str:
    """Embedding chunk sha256s + PCA model sha256 + index settings (α-DBA included: the whole
    IndexParams dump) + what produced them."""
    pca: Manifest | None = parameters["pca"]
    return (
        "index-"
        + stable_digest(
            INDEX_VERSION,
            [m.sha256 for m in parameters["embeddings"]],
            pca.sha256 if pca else None,
            parameters["params"],
            _vector_provenance(parameters.get("meta") or {}),
        )[:32]
    )


@task(cache_key_fn=index_cache_key, persist_result=True, retries=2, retry_condition_fn=transient_io)
def build_index_task(
    store: str,
    embeddings: list[Manifest],
    pca: Manifest | None,
    params: IndexParams,
    meta: dict | None = None,
) -> Manifest:
    total = max(1, progress_total(sum(m.rows for m in embeddings), params))
    progress = create_progress_artifact(0.0, description="index: vectors filed (and augmented)")
    done = shown = 0

    def advance(n: int) -> None:  # the UI needs no more than whole percents
        nonlocal done, shown
        done += n
        percent = int(100 * done / total)
        if progress is not None and percent > shown:
            shown = percent
            update_progress_artifact(progress, progress=float(min(percent, 100)))

    with progress_hook(advance):
        return build_index(ArtifactStore(store), embeddings, pca, params, meta=meta)
