"""Evaluation task: leave-one-out metrics of the index's stored vectors.

Cached on what the figures depend on: the index evaluated (its sha256 covers the embeddings,
the PCA model and the α-DBA settings, which the key also names), the group labels of the
source and the validation pairs. A second run with nothing changed measures nothing; any
change re-measures. The flow recomputes a cached result whose metrics file was overwritten.
"""

from __future__ import annotations

from typing import Any

from prefect import task
from prefect.context import TaskRunContext

from logosim.core.digest import stable_digest
from logosim.core.store import ArtifactStore, Manifest
from logosim.data.sources import SourceSpec
from logosim.data.splits import SPLITS_FILE, pairs_file
from logosim.search.evaluate import EVAL_VERSION, evaluate_build, source_groups
from tasks._prefect import transient_io


def evaluate_cache_key(context: TaskRunContext, parameters: dict[str, Any]) -> str:
    index: Manifest = parameters["index"]
    store = ArtifactStore(parameters["store"])
    pairs = store.read_manifest(pairs_file("val"))
    splits = store.read_manifest(SPLITS_FILE)  # which images are the test split's queries
    return (
        "eval-"
        + stable_digest(
            EVAL_VERSION,
            index.sha256,
            index.meta.get("dba"),
            sorted(source_groups(parameters["source"]).items()),  # a metadata pass
            pairs.sha256 if pairs else None,
            splits.sha256 if splits else None,
            parameters.get("rerank"),
        )[:32]
    )


@task(
    cache_key_fn=evaluate_cache_key,
    persist_result=True,
    retries=2,
    retry_condition_fn=transient_io,
)
def evaluate_task(
    store: str, source: SourceSpec, index: Manifest, rerank: dict | None = None
) -> Manifest:
    return evaluate_build(ArtifactStore(store), source, index, rerank)
