"""Embedding task: one cached task per chunk; returns the chunk file's manifest."""

from __future__ import annotations

from logosim.core.store import Manifest
from logosim.data.chunks import ChunkJob
from logosim.embed.params import EmbedParams
from logosim.embed.runner import embed_chunk
from logosim.embed.runtime import resolve_device
from tasks._gpu import gpu_slot
from tasks._prefect import chunk_task


# Cached on chunk content + embedding version (model, weights, pooling, size, preprocessing):
# a new batch size, device or runtime reuses every finished chunk.
@chunk_task
def embed_chunk_task(job: ChunkJob) -> Manifest:
    # On CUDA, hold a `gpu` slot so two runs don't share one GPU's memory (tasks/_gpu.py).
    with gpu_slot(resolve_device(EmbedParams.model_validate(job.params.get("embed", {})).device)):
        return embed_chunk(job)
