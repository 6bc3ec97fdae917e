"""What every task shares: the chunk cache key, per-store result storage, library logs."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any

from loguru import logger
from prefect import Task, task
from prefect.client.orchestration import get_client
from prefect.context import TaskRunContext
from prefect.filesystems import WritableFileSystem

from logosim.data.chunks import ChunkJob
from tasks._storage import RESULT_STORAGE_ENV, result_storage

# Library logs (loguru) reach Prefect's run logs through the stdlib "logosim" logger, which
# Prefect attaches its API handler to when listed in PREFECT_LOGGING_EXTRA_LOGGERS
# (tasks/_defaults.py).
_stdlib = logging.getLogger("logosim")
_stdlib.setLevel(logging.INFO)
_BRIDGE_INSTALLED = False


def install_log_bridge() -> None:
    global _BRIDGE_INSTALLED
    if _BRIDGE_INSTALLED:
        return

    def forward(message: Any) -> None:
        record = message.record
        _stdlib.log(record["level"].no, "%s", record["message"])

    # Prefect's console handler prints the forwarded records; loguru's own default stderr
    # sink would print every line a second time.
    with contextlib.suppress(ValueError):
        logger.remove(0)
    logger.add(forward, level="INFO", format="{message}")
    _BRIDGE_INSTALLED = True


install_log_bridge()


def chunk_cache_key(context: TaskRunContext, parameters: dict[str, Any]) -> str:
    """Content digest + stage version: never the run id, batch size or device."""
    job: ChunkJob = parameters["job"]
    return job.cache_key


def transient_io(task: Task, task_run: Any, state: Any) -> bool:
    """Retry condition: only I/O hiccups (OSError) are worth a retry; bad data never is."""
    exc = state.data if isinstance(state.data, BaseException) else None
    if exc is None:
        try:
            state.result(raise_on_failure=True)
        except BaseException as raised:  # the failure the task run recorded
            exc = raised
    return isinstance(exc, OSError)


def for_store(task: Task, store_root: str | Path) -> Task:
    """Persist ``task``'s results (manifests) and cache records inside the artifact store,
    or under LOGOSIM_RESULT_STORAGE (a folder or fsspec URL several hosts share)."""
    target = os.environ.get(RESULT_STORAGE_ENV, "")
    api_url = str(get_client(sync_client=True).api_url)
    return task.with_options(result_storage=_saved_storage(str(store_root), target, api_url))


@functools.lru_cache(maxsize=64)
def _saved_storage(store_root: str, target: str, api_url: str) -> WritableFileSystem:
    """The result storage block, saved on the server at ``api_url`` once per process: Prefect
    takes a block only when it is saved (a Dask worker or a later run loads it by id)."""
    block = result_storage(store_root, target)
    settings = json.dumps(block.model_dump(mode="json"), sort_keys=True)
    name = f"logosim-results-{hashlib.sha256(settings.encode()).hexdigest()[:16]}"
    block.save(name, overwrite=True)
    return block


# The policy of every per-chunk task: cached on ChunkJob.cache_key (content digest + stage
# version), results persisted in the store, retried only on transient I/O errors.
chunk_task = functools.partial(
    task,
    cache_key_fn=chunk_cache_key,
    persist_result=True,
    retries=2,
    retry_delay_seconds=2,
    retry_condition_fn=transient_io,
)
