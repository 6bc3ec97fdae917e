"""Where chunk tasks run, chosen by one setting: a thread pool (default) or a Dask cluster.

``LOGOSIM_TASK_RUNNER=dask`` runs chunk tasks through prefect-dask's ``DaskTaskRunner``: on
the scheduler at ``LOGOSIM_DASK_ADDRESS`` when set (a real cluster), else on a temporary
``LocalCluster`` of worker processes. Either way the workers must reach the flow's Prefect
server, which they are told; the runner refuses before any chunk runs otherwise
(flows/dask_workers.py). Flows take the runner in their decorator, so the setting
is read when the flow module is imported: set it in the environment of the process that
serves or runs the flows (``logosim serve``, a worker, a test).

Several machines share one cache when they share the artifact store (a mounted network
folder) and the result storage: ``LOGOSIM_RESULT_STORAGE`` takes a local folder or any fsspec
URL (``s3://bucket/logosim-results``, ``gcs://…``) for the task results (manifests) that
Prefect's cache records point to.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from prefect.filesystems import WritableFileSystem
from prefect.task_runners import TaskRunner, ThreadPoolTaskRunner
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from tasks._storage import result_storage as _result_storage

RunnerKind = Literal["threads", "dask"]


class RunnerSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LOGOSIM_", env_file=".env", extra="ignore")

    task_runner: RunnerKind = Field("threads", description="'threads' or 'dask'.")
    threads: int | None = Field(
        None, ge=1, description="Thread pool size for chunk tasks (default: Python's choice)."
    )
    dask_address: str | None = Field(
        None, description="Scheduler of an existing Dask cluster, e.g. tcp://10.0.0.5:8786."
    )
    dask_workers: int = Field(2, ge=1, description="LocalCluster worker processes.")
    dask_threads_per_worker: int = Field(1, ge=1, description="Threads per LocalCluster worker.")
    result_storage: str | None = Field(
        None, description="Folder or fsspec URL for task results; default: inside the store."
    )


def get_runner_settings() -> RunnerSettings:
    return RunnerSettings()


def chunk_task_runner(
    settings: RunnerSettings | None = None, *, threads: int | None = None
) -> TaskRunner:
    """The task runner for flows that fan out chunk tasks (pass it to ``@flow``).

    ``threads`` caps the thread pool for stages whose chunk already uses every core (OCR,
    the embedder): ``threads=1`` runs chunks in turn locally, yet in parallel on Dask.
    """
    settings = settings or get_runner_settings()
    if settings.task_runner == "threads":
        return ThreadPoolTaskRunner(max_workers=threads or settings.threads)
    return dask_task_runner(settings)


def dask_task_runner(settings: RunnerSettings | None = None) -> TaskRunner:
    # Imported here: prefect-dask is an optional extra ('logosim[dask]').
    try:
        from flows.dask_workers import ReportingDaskTaskRunner
    except ImportError as exc:
        raise RuntimeError(
            "LOGOSIM_TASK_RUNNER=dask needs prefect-dask: pip install 'logosim[dask]'"
        ) from exc
    settings = settings or get_runner_settings()
    if settings.dask_address:
        return ReportingDaskTaskRunner(address=settings.dask_address)
    # The OCR stage starts worker processes of its own, which a nanny's worker may only do
    # when it is not daemonic (the nannies of this LocalCluster run in this process).
    import dask

    dask.config.set({"distributed.worker.daemon": False})
    # Processes, not threads: torch and the decoders hold the GIL in places.
    return ReportingDaskTaskRunner(
        cluster_kwargs={
            "n_workers": settings.dask_workers,
            "threads_per_worker": settings.dask_threads_per_worker,
            "processes": True,
            "dashboard_address": None,
        }
    )


def result_storage(
    store_root: str | Path, settings: RunnerSettings | None = None
) -> WritableFileSystem:
    """Task result storage for ``store_root`` under these settings (see tasks/_storage.py)."""
    settings = settings or get_runner_settings()
    return _result_storage(store_root, settings.result_storage or "")
