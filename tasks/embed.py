"""Embedding task: one cached task per chunk; returns the chunk file's manifest."""

from __future__ import annotations

from logosim.core.store import Manifest
from logosim.data.chunks import ChunkJob
from logosim.embed.graph_runtime import resolve_device
from logosim.embed.params import EmbedParams
from logosim.embed.runner import embed_chunk
from tasks._gpu import gpu_slot
from tasks._prefect import chunk_task


# Cached on chunk content + embedding version (model, weights, pooling, size, preprocessing):
# a new batch size, device or runtime reuses every finished chunk.
@chunk_task
def embed_chunk_task(job: ChunkJob) -> Manifest:
    # On CUDA, hold a `gpu` slot so two runs don't share one GPU's memory (tasks/_gpu.py).
    with gpu_slot(resolve_device(EmbedParams.model_validate(job.params.get("embed", {})).device)):
        return embed_chunk(job)


def local_cache_key(context, parameters) -> str:
    from logosim.embed.local_features import LOCAL_VERSION

    return f"local-{parameters['job'].cache_key}-{LOCAL_VERSION}"


# Cached like the embed task; a store embedded before issue 12 gets each chunk's local
# descriptors once (the network runs on that chunk again; its embeddings stay as they are).
@chunk_task(cache_key_fn=local_cache_key)
def local_chunk_task(job: ChunkJob) -> Manifest | None:
    from logosim.embed.runner import ensure_local

    with gpu_slot(resolve_device(EmbedParams.model_validate(job.params.get("embed", {})).device)):
        return ensure_local(job)
