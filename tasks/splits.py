"""Splits task: one cached task over the source's metadata."""

from __future__ import annotations

from logosim.core.store import Manifest
from logosim.data.chunks import ChunkJob
from logosim.data.splits import compute_splits
from tasks._prefect import chunk_task


# Cached on the metadata digest + splits settings (seed, shares): same input, same splits.
@chunk_task
def make_splits(job: ChunkJob) -> Manifest:
    return compute_splits(job)
