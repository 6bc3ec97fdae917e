"""The embed stage's runner: one chunk job → reader → embedder → writer → manifest."""

from __future__ import annotations

import time

from loguru import logger

from logosim.core.faults import raise_fault_once
from logosim.core.monitor import ResourceMonitor, describe
from logosim.core.store import ArtifactStore, Manifest
from logosim.data.chunks import ChunkJob, finished_chunk
from logosim.data.sources import open_source
from logosim.embed.embedder import Embedder, cached_embedder
from logosim.embed.params import STAGE, EmbedParams, Prepare
from logosim.embed.reader import resolve_prepare
from logosim.embed.writer import embedding_path, local_path, write_embeddings, write_local


def embed_chunk(
    job: ChunkJob, *, embedder: Embedder | None = None, prepare: Prepare | None = None
) -> Manifest:
    """Embed one chunk of the job's source and write it to the store; return its manifest.

    ``job.params`` holds ``{"embed": EmbedParams, "prepare": PrepareSpec | None}``.
    """
    raise_fault_once(f"{STAGE}:{job.chunk.name}")  # test hook: LOGOSIM_FAULT_ONCE (faults.py)
    store = ArtifactStore(job.store)
    params = EmbedParams.model_validate(job.params.get("embed", {}))
    written = [f"errors/{STAGE}/{job.source_chunk_name}.jsonl"]  # before the embeddings
    finished = finished_chunk(
        store, job, embedding_path(job), *written, *([local_path(job)] if params.local else [])
    )
    if finished is not None:
        return finished
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
    blocks = result.local_blocks()
    if blocks is not None and len(blocks) == len(result.ids):
        write_local(store, job, blocks, manifest, _local_meta(embedder))
    write_s = time.perf_counter() - begun
    logger.info(
        f"embed {job.chunk.name}: {len(result.ids)} images, {len(result.errors)} skipped, "
        f"{result.throughput:.1f} img/s ({embedder.runtime.name}, {embedder.device}, "
        f"batch {embedder.batch_size}); {result.seconds:.1f}s: inference "
        f"{result.infer_s:.1f}s, decode+prepare {result.prepare_thread_s:.1f} thread-s "
        f"(overlapped), write {write_s:.2f}s {describe(figures)}"
    )
    return manifest


def _local_meta(embedder: Embedder) -> dict:
    from logosim.embed.local_features import Layout

    return {"projection": embedder.projection_origin, "layout": Layout(embedder.grid).describe()}


def ensure_local(job: ChunkJob, *, embedder: Embedder | None = None) -> Manifest | None:
    """The chunk's local descriptors: the file when present and current, else computed now
    (a store embedded before issue 12: the network runs on this chunk again, the global
    embeddings are left as they are). None where the model cannot give them (an exported
    graph, a CLIP tower): the re-ranker then scores the remaining terms."""
    from logosim.embed.local_features import LOCAL_VERSION

    store = ArtifactStore(job.store)
    have = store.load_verified(local_path(job))
    if have is not None and have.versions.get("local") == LOCAL_VERSION:
        return have
    embeddings = store.load_verified(embedding_path(job))
    if embeddings is None:
        raise FileNotFoundError(f"{embedding_path(job)}: embed the chunk first")
    params = EmbedParams.model_validate(job.params.get("embed", {})).model_copy(
        update={"local": True}
    )
    embedder = embedder or cached_embedder(params, store)
    if not embedder.local:
        logger.warning(
            f"local descriptors: not available for {params.onnx_model or params.model} "
            "(a CLIP tower, or an exported graph without the local output: export it again)"
        )
        return None
    prepare = resolve_prepare(job.params.get("prepare"), store)
    result = embedder.embed_records(
        open_source(job.source).records(job.chunk.start, job.chunk.stop),
        prepare=prepare,
        total=job.chunk.rows,
        desc=f"local {job.chunk.name}",
    )
    blocks = result.local_blocks()
    ids = store.read_arrays(embeddings)["ids"].tolist()
    if blocks is None or result.ids != ids:
        raise ValueError(f"local descriptors for {job.chunk.name}: ids differ from the embeddings")
    logger.info(f"local descriptors for {job.chunk.name}: {len(ids)} images (added to a store)")
    return write_local(store, job, blocks, embeddings, _local_meta(embedder))
