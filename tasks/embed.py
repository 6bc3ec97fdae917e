"""Embedding task: one cached task per chunk; returns the chunk file's manifest."""

from __future__ import annotations

from prefect import task

from logosim.chunks import ChunkJob
from logosim.embed import embed_chunk
from logosim.store import Manifest
from tasks._prefect import chunk_cache_key, transient_io


# Cached on chunk content + embedding version (model, weights, pooling, size, preprocessing):
# a new batch size, device or runtime reuses every finished chunk.
@task(
    cache_key_fn=chunk_cache_key,
    persist_result=True,
    retries=2,
    retry_delay_seconds=2,
    retry_condition_fn=transient_io,
)
def embed_chunk_task(job: ChunkJob) -> Manifest:
    return embed_chunk(job)
