"""Splits task: one cached task over the source's metadata."""

from __future__ import annotations

from prefect import task

from logosim.chunks import ChunkJob
from logosim.splits import compute_splits
from logosim.store import Manifest
from tasks._prefect import chunk_cache_key, transient_io


# Cached on the metadata digest + splits settings (seed, shares): same input, same splits.
@task(
    cache_key_fn=chunk_cache_key,
    persist_result=True,
    retries=2,
    retry_delay_seconds=2,
    retry_condition_fn=transient_io,
)
def make_splits(job: ChunkJob) -> Manifest:
    return compute_splits(job)
