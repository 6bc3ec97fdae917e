"""The index flow: stream the embedding chunks through PCA (and α-DBA) into a FAISS index."""

from __future__ import annotations

from prefect import flow
from prefect.artifacts import create_table_artifact

from flows._verified import run_verified
from logosim.core.store import Manifest
from logosim.index.params import IDS_FILE, IndexParams, describe_dba
from tasks.index import build_index_task


@flow(name="index", log_prints=True)
def index_flow(
    store: str,
    embeddings: list[Manifest],
    pca: Manifest | None,
    params: IndexParams | None = None,
    meta: dict | None = None,
) -> Manifest:
    """``meta`` records what the vectors came from (embed settings, source) for search."""
    manifest = run_verified(
        build_index_task,
        store,
        companions=(IDS_FILE,),
        embeddings=embeddings,
        pca=pca,
        params=params or IndexParams(),
        meta=meta,
    )
    recall = manifest.meta.get("recall_vs_exact", {})
    dba = manifest.meta.get("dba") or {}
    create_table_artifact(
        [
            {"figure": "type", "value": manifest.meta.get("type")},
            {"figure": "vectors", "value": manifest.rows},
            {"figure": "dims", "value": manifest.meta.get("dim")},
            {"figure": "build seconds", "value": manifest.meta.get("build_seconds")},
            {"figure": "α-DBA", "value": describe_dba(dba)},
            {"figure": "α-DBA seconds", "value": dba.get("seconds", 0)},
            *({"figure": f"{k} vs exact", "value": round(v, 4)} for k, v in recall.items()),
        ],
        key="index-summary",
        description="Index build",
    )
    return manifest
