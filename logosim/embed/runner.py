"""The embed stage's runner: one chunk job → reader → embedder → writer → manifest."""

from __future__ import annotations

import time

from loguru import logger

from logosim.core.faults import raise_fault_once
from logosim.core.monitor import ResourceMonitor, describe
from logosim.core.store import ArtifactStore, Manifest
from logosim.data.chunks import ChunkJob
from logosim.data.sources import open_source
from logosim.embed.embedder import Embedder, cached_embedder
from logosim.embed.params import STAGE, EmbedParams, Prepare
from logosim.embed.reader import resolve_prepare
from logosim.embed.writer import write_embeddings


def embed_chunk(
    job: ChunkJob, *, embedder: Embedder | None = None, prepare: Prepare | None = None
) -> Manifest:
    """Embed one chunk of the job's source and write it to the store; return its manifest.

    ``job.params`` holds ``{"embed": EmbedParams, "prepare": PrepareSpec | None}``.
    """
    raise_fault_once(f"{STAGE}:{job.chunk.name}")  # test hook: LOGOSIM_FAULT_ONCE (faults.py)
    store = ArtifactStore(job.store)
    params = EmbedParams.model_validate(job.params.get("embed", {}))
    embedder = embedder or cached_embedder(params, store)
    if prepare is None:
        prepare = resolve_prepare(job.params.get("prepare"), store)
    monitor = ResourceMonitor()
    source = open_source(job.source)
    result = embedder.embed_records(
        source.records(job.chunk.start, job.chunk.stop),
        prepare=prepare,
        total=job.chunk.rows,
        desc=job.chunk.name,
    )
    figures = monitor.sample()
    meta = {
        "images": len(result.ids),
        "errors": len(result.errors),
        "seconds": round(result.seconds, 3),
        "throughput": round(result.throughput, 1),
        "prepare_thread_seconds": round(result.prepare_thread_s, 3),
        "infer_seconds": round(result.infer_s, 3),
        "batch_size": embedder.batch_size,
        "device": embedder.device,
        "runtime": embedder.runtime.name,
        "dim": embedder.dim,
        **figures,
    }
    begun = time.perf_counter()
    manifest = write_embeddings(store, job, result, embedder.dim, meta)
    write_s = time.perf_counter() - begun
    logger.info(
        f"embed {job.chunk.name}: {len(result.ids)} images, {len(result.errors)} skipped, "
        f"{result.throughput:.1f} img/s ({embedder.runtime.name}, {embedder.device}, "
        f"batch {embedder.batch_size}); {result.seconds:.1f}s: inference "
        f"{result.infer_s:.1f}s, decode+prepare {result.prepare_thread_s:.1f} thread-s "
        f"(overlapped), write {write_s:.2f}s {describe(figures)}"
    )
    return manifest
