"""The embed flow: plan chunks → embed each chunk (cached, OOM-safe) → chunk manifests.

One chunk at a time in this process: the embedder already uses every core (ONNX Runtime
intra-op threads + decode threads) or the GPU, and the loaded model is shared between
consecutive chunks. With ``LOGOSIM_TASK_RUNNER=dask`` chunks fan out to worker processes.
"""

from __future__ import annotations

from prefect import flow
from prefect.artifacts import create_table_artifact
from prefect.task_runners import TaskRunner, ThreadPoolTaskRunner

from flows._chunks import run_chunk_tasks
from flows.runner import chunk_task_runner, get_runner_settings
from logosim.core.settings import get_settings
from logosim.core.store import Manifest
from logosim.data.chunks import ChunkJob, plan_chunks
from logosim.data.sources import SourceSpec, open_source
from logosim.embed.params import STAGE, EmbedParams, PrepareSpec
from tasks.embed import embed_chunk_task, local_chunk_task


def embed_task_runner() -> TaskRunner:
    settings = get_runner_settings()
    if settings.task_runner == "threads":
        return ThreadPoolTaskRunner(max_workers=1)  # one model, all cores: chunks in turn
    return chunk_task_runner(settings)


def embed_jobs(
    source: SourceSpec,
    store: str,
    params: EmbedParams,
    chunk_size: int,
    prepare: PrepareSpec | None = None,
) -> list[ChunkJob]:
    version = params.version(prepare.digest if prepare else "")
    job_params = {
        "embed": params.model_dump(mode="json"),
        "prepare": prepare.model_dump(mode="json") if prepare else None,
    }
    return [
        ChunkJob(
            stage=STAGE, store=store, source=source, chunk=chunk, version=version, params=job_params
        )
        for chunk in plan_chunks(open_source(source), chunk_size)
    ]


@flow(name="embed", log_prints=True, task_runner=embed_task_runner())
def embed_flow(
    source: SourceSpec | None = None,
    store: str | None = None,
    params: EmbedParams | None = None,
    chunk_size: int | None = None,
    prepare: PrepareSpec | None = None,
) -> list[Manifest]:
    """Embed every image of ``source`` into ``embeddings/<cache-key>.npz`` chunk files.

    ``prepare`` plugs preprocessing (e.g. text inpainting) in after decoding; its digest is
    part of the cache key.
    """
    source = source or SourceSpec()
    store = store or str(get_settings().store.expanduser().resolve())
    params = params or EmbedParams()
    jobs = embed_jobs(source, store, params, chunk_size or get_settings().chunk_size, prepare)
    manifests = run_chunk_tasks(embed_chunk_task, jobs, label=STAGE)
    if params.local and not params.onnx_model and not params.model.startswith("open_clip:"):
        # issue 12: each chunk's local descriptors (a cache hit where embedding wrote them)
        run_chunk_tasks(local_chunk_task, jobs, label="local")
    _publish_summary(manifests)
    return manifests


def _publish_summary(manifests: list[Manifest]) -> None:
    rows = [
        {
            "chunk": m.path,
            "images": m.rows,
            "skipped": m.meta.get("errors", 0),
            "img/s": m.meta.get("throughput"),
            "runtime": m.meta.get("runtime"),
            "device": m.meta.get("device"),
            "batch": m.meta.get("batch_size"),
            "peak RSS MiB": m.meta.get("peak_rss_mb"),
        }
        for m in manifests
    ]
    if rows:
        create_table_artifact(rows, key="embed-chunks", description="Embedding chunks")
