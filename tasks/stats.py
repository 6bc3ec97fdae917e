"""Stats tasks: one cached task per checkpoint chunk, one that publishes the merged figures."""

from __future__ import annotations

from prefect import task

from logosim.core.store import ArtifactStore, Manifest
from logosim.data.chunks import ChunkJob
from logosim.data.sources import SourceSpec
from logosim.data.stats import StatsSummary, compute_chunk_stats, finish_stats
from logosim.report.plots import write_histograms
from tasks._prefect import chunk_task, transient_io


# Cached on chunk content + stats version: a rerun after a kill skips every finished chunk.
@chunk_task
def stats_chunk(job: ChunkJob) -> Manifest:
    return compute_chunk_stats(job)


# Cheap (merging counters, drawing a few charts), so always rerun: it reflects the plan.
@task(retries=2, retry_condition_fn=transient_io)
def publish_stats(
    store: str, source: SourceSpec, chunks: list[Manifest]
) -> tuple[StatsSummary, dict]:
    return finish_stats(ArtifactStore(store), source, chunks, write_histograms)
