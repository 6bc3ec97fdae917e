"""The reindex flow (nightly): diff source vs index → drop deleted → embed new/changed → add.

New and changed images are embedded with the settings the index was built with (recorded in
its manifest) and added to the existing index in place; deleted ones are tombstoned. The
fingerprint table is committed last, so a run that fails midway is simply redone next time.
"""

from __future__ import annotations

import time

from prefect import flow
from prefect.artifacts import create_markdown_artifact
from pydantic import BaseModel

from flows.embed import embed_flow
from flows.hooks import report_failure
from flows.preprocess import embed_prepare, preprocess_flow
from logosim.core.settings import get_settings
from logosim.core.store import ArtifactStore, Manifest
from logosim.core.store_lock import store_lock
from logosim.data.sources import SourceSpec
from logosim.embed.params import EmbedParams, PrepareSpec
from logosim.index.reindex import index_manifest
from logosim.preprocess.stage import PreprocessParams
from tasks.reindex import (
    add_to_index_task,
    commit_fingerprints_task,
    delta_source_task,
    plan_reindex_task,
    remove_from_index_task,
)


class ReindexResult(BaseModel):
    new: int
    changed: int
    deleted: int
    unchanged: int
    embedded: int
    index: Manifest
    seconds: float


@flow(name="reindex", log_prints=True, on_failure=[report_failure])
def reindex_flow(
    source: SourceSpec | None = None,
    store: str | None = None,
    chunk_size: int | None = None,
) -> ReindexResult:
    store = store or str(get_settings().store.expanduser().resolve())
    with store_lock(store):  # never beside a build or another reindex of this store
        return _reindex(source or SourceSpec(), store, chunk_size)


def _reindex(source: SourceSpec, store: str, chunk_size: int | None) -> ReindexResult:
    started = time.perf_counter()
    built_with = index_manifest(ArtifactStore(store)).meta  # fails clearly when no index yet
    plan = plan_reindex_task(store, source)
    index = index_manifest(ArtifactStore(store))
    if plan.deleted_ids:
        index = remove_from_index_task(store, plan.deleted_ids)
    embedded = 0
    if plan.rows_to_embed:
        delta = delta_source_task(store, source, plan.rows_to_embed)
        chunks = embed_flow(
            delta,
            store,
            EmbedParams.as_recorded(built_with.get("embed") or {}),
            chunk_size,
            _prepare(delta, store, built_with, chunk_size),
        )
        embedded = sum(m.rows for m in chunks)
        index = add_to_index_task(store, chunks)
    commit_fingerprints_task(store, plan)
    result = ReindexResult(
        new=len(plan.new_rows),
        changed=len(plan.changed_rows),
        deleted=len(plan.deleted_ids),
        unchanged=plan.unchanged,
        embedded=embedded,
        index=index,
        seconds=round(time.perf_counter() - started, 2),
    )
    _publish_summary(source, result, plan.seeded)
    return result


def _prepare(
    delta: SourceSpec, store: str, built_with: dict, chunk_size: int | None
) -> PrepareSpec | None:
    """New images are seen as the build saw its own: their text masked with its settings."""
    if built_with.get("preprocess"):
        params = PreprocessParams.as_recorded(built_with["preprocess"])
        return embed_prepare(preprocess_flow(delta, store, params, chunk_size), params)
    if built_with.get("prepare"):  # an index from before the settings were recorded
        return PrepareSpec.model_validate(built_with["prepare"])
    return None


def _publish_summary(source: SourceSpec, result: ReindexResult, seeded: bool) -> None:
    lines = [
        f"# Reindex: {source.label()}",
        f"- new: **{result.new:,}**, changed: **{result.changed:,}**, "
        f"deleted: **{result.deleted:,}**, unchanged: {result.unchanged:,}",
        f"- embedded: {result.embedded:,} "
        f"({result.new + result.changed - result.embedded:,} unusable; see errors.jsonl)",
        f"- index now: {result.index.rows:,} vectors (`{result.index.path}`)",
        f"- took {result.seconds:.1f} s",
    ]
    if seeded:
        lines.append("- fingerprint table seeded from the index (first reindex after a build)")
    create_markdown_artifact("\n".join(lines), key="reindex-summary", description="Reindex")
    print("\n".join(lines))
