"""Reindex tasks: plan the delta, copy it out, update the index, commit the fingerprints.

None is cached across runs: each reads the current state of the source and the index, which
is exactly what a nightly run must not take from yesterday. The embedding of the delta is
cached as usual (by content), so a retried night re-embeds nothing it already did.
"""

from __future__ import annotations

from prefect import task

from logosim.core.store import ArtifactStore, Manifest
from logosim.data.sources import SourceSpec, open_source
from logosim.index.add import add_to_index, remove_from_index
from logosim.index.reindex import ReindexPlan, commit_fingerprints, plan_reindex, write_delta_source
from tasks._prefect import transient_io


@task(retries=2, retry_condition_fn=transient_io)
def plan_reindex_task(store: str, source: SourceSpec) -> ReindexPlan:
    return plan_reindex(ArtifactStore(store), open_source(source))


@task(retries=2, retry_condition_fn=transient_io)
def delta_source_task(store: str, source: SourceSpec, rows: list[int]) -> SourceSpec:
    return write_delta_source(ArtifactStore(store), open_source(source), rows)


@task(retries=2, retry_condition_fn=transient_io)
def remove_from_index_task(store: str, ids: list[str]) -> Manifest:
    return remove_from_index(ArtifactStore(store), ids)


@task(retries=2, retry_condition_fn=transient_io)
def add_to_index_task(store: str, chunks: list[Manifest]) -> Manifest:
    return add_to_index(ArtifactStore(store), chunks)


@task(retries=2, retry_condition_fn=transient_io)
def commit_fingerprints_task(store: str, plan: ReindexPlan) -> Manifest:
    return commit_fingerprints(ArtifactStore(store), plan)
