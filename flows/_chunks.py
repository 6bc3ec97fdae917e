"""Running one task per chunk: submit, wait, trust only what verifies, show progress."""

from __future__ import annotations

from collections.abc import Sequence

from loguru import logger
from prefect import Task
from prefect.artifacts import create_progress_artifact, update_progress_artifact

from logosim.core.store import ArtifactStore, Manifest
from logosim.data.chunks import ChunkJob
from tasks._prefect import for_store


def run_chunk_tasks(task: Task, jobs: Sequence[ChunkJob], *, label: str) -> list[Manifest]:
    """Run ``task`` once per job; a cached manifest whose file is gone or corrupt is recomputed.

    Results come back in job order. Progress shows in the Prefect UI as a progress artifact.
    """
    if not jobs:
        return []
    store = ArtifactStore(jobs[0].store)
    bound = for_store(task, store.root)
    progress_id = create_progress_artifact(progress=0.0, description=f"{label}: chunks done")
    futures = [
        bound.with_options(task_run_name=f"{label}-{job.chunk.name}").submit(job) for job in jobs
    ]
    manifests: list[Manifest] = []
    for done, (job, future) in enumerate(zip(jobs, futures, strict=True), start=1):
        manifest: Manifest = future.result()
        if not store.verify(manifest):
            logger.warning(
                f"{label} {job.chunk.name}: cached {manifest.path} missing or corrupt; recomputing"
            )
            manifest = bound.with_options(
                refresh_cache=True, task_run_name=f"{label}-{job.chunk.name}-recompute"
            )(job)
        manifests.append(manifest)
        if progress_id is not None:
            update_progress_artifact(progress_id, progress=100.0 * done / len(jobs))
    return manifests
