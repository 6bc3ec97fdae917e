"""Training task: one long task that resumes itself from the store's checkpoints."""

from __future__ import annotations

from prefect import task
from prefect.artifacts import (
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)
from prefect.cache_policies import NO_CACHE

from logosim.core.store import ArtifactStore, Manifest
from logosim.data.sources import SourceSpec
from logosim.embed.graph_runtime import resolve_device
from logosim.train.loop import train
from logosim.train.params import TrainParams
from tasks._gpu import gpu_slot
from tasks._prefect import transient_io


# Never cached: the checkpoints are the memory. A retry after an I/O failure resumes from
# the newest valid checkpoint instead of starting over.
@task(cache_policy=NO_CACHE, retries=1, retry_delay_seconds=5, retry_condition_fn=transient_io)
def fine_tune(source: SourceSpec, store: str, params: TrainParams) -> Manifest:
    progress = create_progress_artifact(0.0, description="train: steps done")
    history: list[dict] = []

    def on_step(step: int, total: int) -> None:
        if progress is not None and (step % 10 == 0 or step == total):
            update_progress_artifact(progress, progress=100.0 * step / total)

    def on_epoch(report: dict) -> None:
        history.append({k: v for k, v in report.items() if isinstance(v, int | float | str)})
        create_table_artifact(history, key="train-validation", description="Validation per epoch")

    # On CUDA, hold a `gpu` slot so two runs don't share one GPU's memory (tasks/_gpu.py).
    with gpu_slot(resolve_device(params.device)):
        result = train(source, ArtifactStore(store), params, on_step=on_step, on_epoch=on_epoch)
    manifest = result.best_model or result.checkpoint
    if manifest is None:
        raise RuntimeError("training produced neither a model nor a checkpoint")
    summary = {
        "status": result.status,
        "step": result.step,
        "epoch": result.epoch,
        "best_score": result.best_score,
        "resumed_from": result.resumed_from,
    }
    return manifest.model_copy(update={"meta": manifest.meta | {"run": summary}})
