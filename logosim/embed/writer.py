"""The embed stage's writer: ``embeddings/<cache-key>.npz`` (ids, raw pooled float32
embeddings, rows) and the chunk's error file, atomically, via the store."""

from __future__ import annotations

from typing import Any

import numpy as np

from logosim.core.failures import write_chunk_errors
from logosim.core.store import ArtifactStore, Manifest
from logosim.data.chunks import ChunkJob
from logosim.embed.embedder import EmbedResult
from logosim.embed.params import STAGE


def embedding_path(job: ChunkJob) -> str:
    return f"embeddings/{job.cache_key}.npz"


def write_embeddings(
    store: ArtifactStore, job: ChunkJob, result: EmbedResult, dim: int, meta: dict[str, Any]
) -> Manifest:
    write_chunk_errors(store, STAGE, job.source_chunk_name, result.errors)
    arrays = {
        "ids": np.asarray(result.ids, dtype=np.str_),
        "embeddings": result.matrix(dim),
        "rows": np.asarray(result.rows, dtype=np.int64),
    }
    return store.write_arrays(
        embedding_path(job),
        arrays,
        kind="embeddings",
        rows=len(result.ids),
        versions={"embed": job.version, "chunk": job.chunk.digest},
        meta=meta,
    )


def local_path(job: ChunkJob) -> str:
    """The chunk's local descriptor blocks: a plain ``.npy`` (memory-mapped at search)."""
    return f"local/{job.cache_key}.npy"


def write_local(
    store: ArtifactStore, job: ChunkJob, blocks: np.ndarray, embeddings: Manifest, meta: dict
) -> Manifest:
    """Row i of the blocks belongs to row i of ``embeddings`` (same ids, same order)."""
    from logosim.embed.local_features import LOCAL_VERSION

    def save(tmp) -> None:
        with open(tmp, "wb") as fh:
            np.save(fh, np.ascontiguousarray(blocks, dtype=np.float16))

    return store.write_with(
        local_path(job),
        save,
        kind="local",
        rows=len(blocks),
        versions={"embed": job.version, "chunk": job.chunk.digest, "local": LOCAL_VERSION},
        meta={**meta, "embeddings": embeddings.sha256},
        expected_bytes=blocks.nbytes,
    )
